//! The integration tests: one binary, one module per area. They run the real `scanpay`
//! binary as processes against the sandbox over loopback, on real journal files.

mod common;
mod console;

mod ams;
mod api;
mod architecture;
mod books;
mod cert_mode;
mod chaos;
mod cli;
mod customer_scan;
mod daemon;
mod deploy;
mod display;
mod fuzz;
mod journal_damage;
mod keys;
mod members;
mod monitoring;
mod openapi;
mod operator;
mod outputs;
mod plain_output;
mod reconcile;
mod sandbox_charset;
mod scanner;
mod simulation;
mod trust_edges;
mod wechat;
