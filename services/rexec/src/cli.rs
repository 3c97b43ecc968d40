//! The options of `sixstack rexec HOST COMMAND...`. The password is not among them: it
//! comes from sixstack's vault.

use std::time::Duration;

use zeroize::Zeroizing;

use crate::{Credentials, Error, Job, Options};

/// Runs a command on a remote host with the rexec protocol (TCP port 512): the host's
/// rexecd checks the user name and password, then runs the command with the user's login
/// shell. Its standard output and standard error are relayed to sixstack's own, and
/// sixstack exits with the command's exit status. The password travels unencrypted: use
/// rexec only on networks you trust.
#[derive(Debug, Clone, clap::Args)]
pub struct RexecArgs {
    /// The host to run the command on: a name or an IPv4 or IPv6 address.
    #[arg(value_name = "HOST")]
    pub host: String,

    /// The command: its words are joined with single spaces and run by the remote user's
    /// login shell, so quoting, pipes and redirections are the remote shell's. Give the
    /// options before it: everything after its first word belongs to the command.
    #[arg(
        value_name = "COMMAND",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,

    /// The remote user to run the command as (at most 16 bytes).
    #[arg(short = 'l', long, value_name = "USER")]
    pub user: String,

    /// The server's port.
    #[arg(short, long, value_name = "PORT", default_value_t = 512)]
    pub port: u16,

    /// Seconds to wait for the connection to the server.
    #[arg(long, value_name = "SECS", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub connect_timeout: u64,

    /// Seconds to wait for each step of the server's answer (its standard-error
    /// connection, then its verdict on the login).
    #[arg(long, value_name = "SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub answer_timeout: u64,

    /// Give up when the command has not finished after SECS seconds (by default sixstack
    /// waits as long as it runs).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,

    /// Do not ask the server to connect back for standard error (useful when it cannot
    /// reach this host, e.g. through NAT or a firewall): the remote shell then sends
    /// standard error mixed into standard output.
    #[arg(long)]
    pub no_stderr: bool,
}

impl RexecArgs {
    /// The command text sent to the remote shell: the words joined with single spaces.
    pub fn command_line(&self) -> String {
        self.command.join(" ")
    }

    /// The options these arguments ask for.
    pub fn options(&self) -> Options {
        Options {
            connect_timeout: Duration::from_secs(self.connect_timeout),
            answer_timeout: Duration::from_secs(self.answer_timeout),
            run_timeout: self.timeout.map(Duration::from_secs),
            separate_stderr: !self.no_stderr,
        }
    }

    /// Resolves the host (through the system's resolver for a name) and builds the job,
    /// checking the user name, password and command against the protocol's limits.
    pub fn job(&self, password: Zeroizing<String>) -> Result<Job, Error> {
        let server = sixstack_transport::resolve(&self.host, self.port).map_err(|source| {
            Error::Resolve {
                host: self.host.clone(),
                source,
            }
        })?;
        Job::new(
            server,
            Credentials::new(self.user.clone(), password)?,
            self.command_line(),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        rexec: RexecArgs,
    }

    fn parse(args: &[&str]) -> Result<RexecArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("rexec").chain(args.iter().copied())).map(|c| c.rexec)
    }

    #[test]
    fn defaults_and_command_words() {
        let a = parse(&["-l", "bob", "host.example", "ls", "-la", "/tmp"]).unwrap();
        assert_eq!(a.host, "host.example");
        assert_eq!(a.command_line(), "ls -la /tmp");
        assert_eq!(a.port, 512);
        let o = a.options();
        assert_eq!(o.connect_timeout, Duration::from_secs(20));
        assert_eq!(o.answer_timeout, Duration::from_secs(30));
        assert_eq!(o.run_timeout, None);
        assert!(o.separate_stderr);
    }

    #[test]
    fn options_before_the_command() {
        let a = parse(&[
            "--user",
            "bob",
            "-p",
            "5120",
            "--timeout",
            "9",
            "--no-stderr",
            "10.0.0.1",
            "echo",
            "--no-stderr",
        ])
        .unwrap();
        assert_eq!(a.port, 5120);
        assert_eq!(a.command_line(), "echo --no-stderr");
        assert_eq!(a.options().run_timeout, Some(Duration::from_secs(9)));
        assert!(!a.options().separate_stderr);
        let job = a.job(Zeroizing::new("pw".into())).unwrap();
        assert_eq!(job.server, "10.0.0.1:5120".parse().unwrap());
        assert_eq!(job.command(), "echo --no-stderr");
    }

    #[test]
    fn refusals() {
        assert!(parse(&["-l", "bob", "host"]).is_err(), "no command");
        assert!(parse(&["host", "true"]).is_err(), "no user");
        assert!(parse(&["-l", "bob", "--timeout", "0", "host", "true"]).is_err());
        let a = parse(&["-l", "a-user-name-too-long", "10.0.0.1", "true"]).unwrap();
        assert!(matches!(
            a.job(Zeroizing::new(String::new())),
            Err(Error::BadUser { .. })
        ));
        let a = parse(&["-l", "bob", "bad host", "true"]).unwrap();
        assert!(matches!(
            a.job(Zeroizing::new(String::new())),
            Err(Error::Resolve { .. })
        ));
    }
}
