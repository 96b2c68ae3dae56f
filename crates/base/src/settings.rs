//! The `VAULT_*` variables. An empty value counts as unset, as aws-vault
//! and the AWS CLI treat theirs: `VAULT_PIN= vault exec …` in a script must
//! not send an empty PIN.

/// The variable's value when it is set to something.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}
