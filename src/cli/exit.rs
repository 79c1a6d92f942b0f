//! How a command ends: `Ok(status)`, or a [`Failure`] that carries its exit status and what
//! went wrong. [`super::run`] prints a failure once, as `error: …`, and exits with its status.

use std::fmt::Display;

use super::{EXIT_FAILED, EXIT_USAGE};

/// A command that could not do its work: the exit status and the error to print.
#[derive(Debug)]
pub struct Failure {
    pub status: u8,
    pub error: anyhow::Error,
}

/// What every command returns.
pub type Exit = Result<u8, Failure>;

impl Failure {
    pub fn new(status: u8, message: impl Display) -> Failure {
        Failure {
            status,
            error: anyhow::anyhow!("{message}"),
        }
    }

    /// Usage or configuration error: nothing was changed (exit 2).
    pub fn usage(message: impl Display) -> Failure {
        Failure::new(EXIT_USAGE, message)
    }

    /// The command failed (exit 1).
    pub fn failed(message: impl Display) -> Failure {
        Failure::new(EXIT_FAILED, message)
    }

    /// Prints the failure and gives its status.
    pub fn report(self) -> u8 {
        eprintln!("error: {:#}", self.error);
        self.status
    }
}

/// Turns any error into a [`Failure`] with the status it means.
pub trait OrExit<T> {
    /// Exit 2: the input or the configuration is wrong.
    fn or_usage(self) -> Result<T, Failure>;
    /// Exit 1: the command could not do its work.
    fn or_failed(self) -> Result<T, Failure>;
}

impl<T, E: Display> OrExit<T> for Result<T, E> {
    fn or_usage(self) -> Result<T, Failure> {
        self.map_err(Failure::usage)
    }

    fn or_failed(self) -> Result<T, Failure> {
        self.map_err(Failure::failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_keeps_its_status_and_message() {
        let r: Result<(), String> = Err("journal /x does not exist".into());
        let f = r.or_usage().unwrap_err();
        assert_eq!(f.status, EXIT_USAGE);
        assert_eq!(format!("{:#}", f.error), "journal /x does not exist");
        let f = Err::<(), _>("printing: out of paper")
            .or_failed()
            .unwrap_err();
        assert_eq!(f.status, EXIT_FAILED);
    }
}
