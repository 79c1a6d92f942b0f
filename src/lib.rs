//! scanpay: a point-of-sale daemon that charges Alipay payment codes scanned at a checkout,
//! with a durable journal that turns every unclear outcome into a known one.
//!
//! Modules in reading order:
//! - [`money`], [`paycode`]: exact amounts; what a scan is, masked codes.
//! - [`state`]: the sale and attempt state machines, pure.
//! - [`journal`]: the SQLite record of every sale, attempt and refund.
//! - [`gateway`]: the provider seam and its clients; [`sandbox`]: a provider's test mode.
//! - [`engine`], [`watchdog`]: scan → durable attempt → pay → known outcome.
//! - [`events`], [`view`], [`output`]: what the outside world sees.
//! - [`config`], [`clock`]: configuration and time.
//! - [`cli`]: the commands of the `scanpay` binary.

pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod device;
pub mod engine;
pub mod events;
pub mod failpoint;
pub mod fuzzing;
pub mod gateway;
pub mod journal;
pub mod money;
pub mod output;
pub mod paycode;
pub mod reconcile;
pub mod report;
pub mod sandbox;
pub mod state;
pub mod systemd;
pub mod view;
pub mod watchdog;
