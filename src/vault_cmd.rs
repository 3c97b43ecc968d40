//! `sixstack vault ...` and how every batch client finds its passwords: the vault file and
//! what unlocks it (a machine key file for unattended jobs, else a passphrase).

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use sixstack_vault::{KeySource, Vault, Zeroizing};

/// Where the vault is unless told otherwise.
pub const DEFAULT_VAULT: &str = "/etc/sixstack/vault";

/// Which vault, and what unlocks it.
#[derive(Args, Debug, Clone)]
pub struct VaultArgs {
    /// The vault file.
    #[arg(long, env = "SIXSTACK_VAULT", default_value = DEFAULT_VAULT, global = true)]
    pub vault: PathBuf,
    /// The machine key file that unlocks it (default: `VAULT.key` when that file exists;
    /// otherwise a passphrase is asked on the terminal, or taken from
    /// SIXSTACK_VAULT_PASSPHRASE).
    #[arg(long, env = "SIXSTACK_VAULT_KEY", global = true)]
    pub vault_key: Option<PathBuf>,
}

impl VaultArgs {
    fn default_key_file(&self) -> PathBuf {
        let mut s = self.vault.as_os_str().to_os_string();
        s.push(".key");
        PathBuf::from(s)
    }

    /// What unlocks an existing vault.
    pub fn key_source(&self) -> Result<KeySource, String> {
        if let Some(k) = &self.vault_key {
            return Ok(KeySource::key_file(k));
        }
        let default = self.default_key_file();
        if default.exists() {
            return Ok(KeySource::key_file(default));
        }
        Ok(KeySource::Passphrase(passphrase(
            &format!("passphrase of {}: ", self.vault.display()),
            false,
        )?))
    }

    /// Opens the vault.
    pub fn open(&self) -> Result<Vault, String> {
        let key = self.key_source()?;
        Vault::open(&self.vault, &key).map_err(|e| e.to_string())
    }

    /// The secret of `entry`, for a client.
    pub fn password(&self, entry: &str) -> Result<Zeroizing<String>, String> {
        self.open()?.get(entry).map_err(|e| e.to_string())
    }
}

/// A passphrase: SIXSTACK_VAULT_PASSPHRASE, else asked on the terminal (twice when
/// `confirm`).
fn passphrase(prompt: &str, confirm: bool) -> Result<Zeroizing<String>, String> {
    if let Ok(p) = std::env::var("SIXSTACK_VAULT_PASSPHRASE") {
        return Ok(Zeroizing::new(p));
    }
    if !std::io::stdin().is_terminal() {
        return Err("the vault needs a key file (--vault-key) or a passphrase \
                    (SIXSTACK_VAULT_PASSPHRASE, or run on a terminal)"
            .into());
    }
    let first = Zeroizing::new(rpassword::prompt_password(prompt).map_err(|e| e.to_string())?);
    if confirm {
        let again =
            Zeroizing::new(rpassword::prompt_password("again: ").map_err(|e| e.to_string())?);
        if *first != *again {
            return Err("the two entries differ".into());
        }
    }
    if first.is_empty() {
        return Err("an empty passphrase is refused".into());
    }
    Ok(first)
}

/// A secret to store: asked twice on a terminal, else one line of standard input.
fn secret_from_user(name: &str) -> Result<Zeroizing<String>, String> {
    if std::io::stdin().is_terminal() {
        let a = Zeroizing::new(
            rpassword::prompt_password(format!("secret for {name}: "))
                .map_err(|e| e.to_string())?,
        );
        let b = Zeroizing::new(rpassword::prompt_password("again: ").map_err(|e| e.to_string())?);
        if *a != *b {
            return Err("the two entries differ".into());
        }
        return Ok(a);
    }
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("reading the secret from standard input: {e}"))?;
    let trimmed = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
    if trimmed.is_empty() {
        return Err("no secret on standard input".into());
    }
    Ok(trimmed)
}

/// `sixstack vault` actions.
#[derive(Subcommand, Debug)]
pub enum VaultAction {
    /// Create an empty vault, unlocked by a new machine key file (default `VAULT.key`,
    /// mode 0600) or, with --passphrase, by a passphrase.
    Init {
        /// Use a passphrase instead of a key file.
        #[arg(long)]
        passphrase: bool,
    },
    /// Store (or replace) a secret. It is asked on the terminal or read as one line from
    /// standard input; never given on the command line unless --insecure-password.
    Set {
        /// The entry's name (e.g. `ftp.example:anna`).
        name: String,
        /// The secret itself (visible to other users in the process list: refused
        /// without --insecure-password).
        secret: Option<String>,
        /// Accept the secret on the command line.
        #[arg(long)]
        insecure_password: bool,
    },
    /// Print a secret on standard output.
    Get {
        /// The entry's name.
        name: String,
    },
    /// List the entries' names.
    List,
    /// Remove an entry.
    Rm {
        /// The entry's name.
        name: String,
    },
    /// Re-seal every entry under a new key: a new key file (--new-key-file) or a new
    /// passphrase (--new-passphrase).
    Rekey {
        /// The new machine key file (created when missing).
        #[arg(long, conflicts_with = "new_passphrase")]
        new_key_file: Option<PathBuf>,
        /// Ask for a new passphrase.
        #[arg(long)]
        new_passphrase: bool,
    },
    /// Import `machine M login L password P` entries of a .netrc file as `M:L`.
    ImportNetrc {
        /// The .netrc file.
        file: PathBuf,
    },
}

/// Runs a `sixstack vault` action; returns what to print.
pub fn run(args: &VaultArgs, action: VaultAction) -> Result<String, String> {
    match action {
        VaultAction::Init { passphrase: pass } => {
            let key = if pass {
                KeySource::Passphrase(passphrase("new passphrase: ", true)?)
            } else {
                KeySource::key_file(
                    args.vault_key
                        .clone()
                        .unwrap_or_else(|| args.default_key_file()),
                )
            };
            if let Some(dir) = args.vault.parent().filter(|d| !d.as_os_str().is_empty()) {
                create_private_dir(dir)?;
            }
            Vault::init(&args.vault, &key).map_err(|e| e.to_string())?;
            Ok(match key {
                KeySource::KeyFile(k) => format!(
                    "created {} (key file {})",
                    args.vault.display(),
                    k.display()
                ),
                _ => format!("created {} (passphrase)", args.vault.display()),
            })
        }
        VaultAction::Set {
            name,
            secret,
            insecure_password,
        } => {
            sixstack_vault::validate_name(&name).map_err(|e| e.to_string())?;
            let secret = match secret {
                Some(s) if insecure_password => Zeroizing::new(s),
                Some(_) => {
                    return Err("a secret on the command line is refused (other users can \
                                see it); leave it out to be asked, or pipe it on standard \
                                input (or give --insecure-password)"
                        .into())
                }
                None => secret_from_user(&name)?,
            };
            let mut v = args.open()?;
            v.set(&name, &secret).map_err(|e| e.to_string())?;
            Ok(format!("stored {name}"))
        }
        VaultAction::Get { name } => {
            let v = args.open()?;
            let s = v.get(&name).map_err(|e| e.to_string())?;
            Ok(s.to_string())
        }
        VaultAction::List => Ok(args.open()?.list().join("\n")),
        VaultAction::Rm { name } => {
            let mut v = args.open()?;
            v.rm(&name).map_err(|e| e.to_string())?;
            Ok(format!("removed {name}"))
        }
        VaultAction::Rekey {
            new_key_file,
            new_passphrase,
        } => {
            let mut v = args.open()?;
            let new = match (new_key_file, new_passphrase) {
                (Some(k), _) => KeySource::key_file(k),
                (None, true) => KeySource::Passphrase(passphrase("new passphrase: ", true)?),
                (None, false) => {
                    return Err("rekey needs --new-key-file FILE or --new-passphrase".into())
                }
            };
            v.rekey(&new).map_err(|e| e.to_string())?;
            Ok(format!("re-sealed {} entries", v.len()))
        }
        VaultAction::ImportNetrc { file } => {
            let mut v = args.open()?;
            let names = v.import_netrc(&file).map_err(|e| e.to_string())?;
            Ok(format!("imported {}: {}", names.len(), names.join(", ")))
        }
    }
}

fn create_private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))
}

/// Where a client's password comes from: `vault:NAME`, or (only with
/// --insecure-password) the password itself.
pub fn client_password(
    vault: &VaultArgs,
    from: Option<&str>,
    insecure: bool,
) -> Result<Option<Zeroizing<String>>, String> {
    match from {
        None => Ok(None),
        Some(f) => match f.strip_prefix("vault:") {
            Some(name) => vault.password(name).map(Some),
            None if insecure => Ok(Some(Zeroizing::new(f.to_string()))),
            None => Err(
                "--password-from takes vault:NAME; a clear-text password on the \
                         command line is refused (store it with `sixstack vault set NAME`, \
                         or give --insecure-password)"
                    .into(),
            ),
        },
    }
}
