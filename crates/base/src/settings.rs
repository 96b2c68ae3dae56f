//! The `VAULT_*` variables. An empty value counts as unset, as aws-vault
//! and the AWS CLI treat theirs: `VAULT_PIN= vault exec …` in a script must
//! not send an empty PIN.

/// The variable's value when it is set to something.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The file store's passphrase, for scripts and headless machines.
pub const FILE_PASSPHRASE: &str = "VAULT_FILE_PASSPHRASE";

/// vault's own secrets that scripts may hand it in the environment: the
/// file store's passphrase and the tokens' PINs. They are vault's, not the
/// command's: a shell started by `vault exec` would pass them on to every
/// program it runs.
pub const VAULT_SECRETS: &[&str] = &[
    FILE_PASSPHRASE,
    "VAULT_PIN",
    "VAULT_NEW_PIN",
    "VAULT_NEW_PUK",
    "VAULT_FIDO2_PIN",
];

/// Takes vault's own secrets out of the environment of a helper program
/// vault starts (mfa_process, a credential_process source, a dialog, the
/// browser opener): they are vault's, and such programs need none of them.
pub fn without_vault_secrets(cmd: &mut std::process::Command) -> &mut std::process::Command {
    for k in VAULT_SECRETS {
        cmd.env_remove(k);
    }
    cmd
}
