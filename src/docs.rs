//! What vault reads besides its command line, in one place: the
//! `~/.aws/config` keys, the environment variables, the files, the exit
//! statuses and the everyday examples. `vault man` renders these tables;
//! tests/cli_completion.rs holds them to the source (every key resolve.rs
//! takes, every `VAULT_*` the source names), so a new setting without a
//! line here fails a test instead of going undocumented.

/// A name and what it means, in one line.
pub type Entry = (&'static str, &'static str);

/// Keys of a `[profile NAME]` (or `[default]`) section vault reads.
pub const CONFIG_KEYS: &[Entry] = &[
    ("region", "The region of the credentials (AWS_REGION, AWS_DEFAULT_REGION override it)."),
    ("mfa_serial", "The MFA device's ARN: vault asks for (or reads from the YubiKey) its code."),
    ("role_arn", "The role to assume with the source profile's credentials."),
    ("source_profile", "The profile whose credentials assume role_arn; chains of any depth."),
    ("role_session_name", "The role session's name (default: vault-TIMESTAMP)."),
    ("external_id", "The external ID the role's trust policy requires."),
    ("duration_seconds", "Role session length, 900 to 129600 seconds."),
    ("include_profile", "Another profile whose settings this one inherits."),
    ("mfa_process", "A command that prints the MFA code, instead of a prompt."),
    ("endpoint_url", "The STS endpoint of this profile (after AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL, [services])."),
    ("services", "A [services NAME] section whose sts endpoint_url is the STS endpoint."),
    ("session_tags", "Session tags for AssumeRole: key=value,key=value."),
    ("transitive_session_tags", "Which of session_tags carry over to chained roles."),
    ("source_identity", "The source identity set on AssumeRole."),
    ("credential_process", "A command printing credential JSON, the root of a chain instead of a stored key."),
    ("credential_source", "Recognised and refused with a message: vault does not support it."),
    ("web_identity_token_file", "Recognised and refused with a message: vault does not support web identity."),
    ("sso_session", "The [sso-session NAME] section an SSO profile signs in with."),
    ("sso_start_url", "The IAM Identity Center start URL (in the sso-session, or the profile for legacy SSO)."),
    ("sso_region", "The IAM Identity Center region."),
    ("sso_registration_scopes", "OAuth scopes of the client registration (default sso:account:access)."),
    ("sso_account_id", "The account an SSO profile signs in to."),
    ("sso_role_name", "The permission set (role) an SSO profile uses."),
    ("vault_sso_populated", "Marks a profile vault sso populate wrote, so it may rewrite or list it as stale."),
];

/// Environment variables vault reads, and those it sets for `exec`'s
/// command.
pub const ENV_VARS: &[Entry] = &[
    (
        "AWS_CONFIG_FILE",
        "The AWS config file (default ~/.aws/config).",
    ),
    (
        "AWS_PROFILE",
        "The profile of exec, export and login when none is named.",
    ),
    (
        "AWS_REGION",
        "Overrides every profile's region (AWS_DEFAULT_REGION when unset).",
    ),
    (
        "AWS_DEFAULT_REGION",
        "Overrides every profile's region when AWS_REGION is unset.",
    ),
    ("AWS_MFA_SERIAL", "Overrides mfa_serial."),
    ("AWS_ROLE_ARN", "Overrides the target profile's role_arn."),
    (
        "AWS_ROLE_SESSION_NAME",
        "Overrides the target profile's role_session_name.",
    ),
    (
        "AWS_SESSION_TAGS",
        "Overrides the target profile's session_tags.",
    ),
    (
        "AWS_TRANSITIVE_TAGS",
        "Overrides the target profile's transitive_session_tags.",
    ),
    (
        "AWS_SOURCE_IDENTITY",
        "Overrides the target profile's source_identity.",
    ),
    (
        "AWS_ENDPOINT_URL",
        "The endpoint of every AWS service vault calls.",
    ),
    (
        "AWS_ENDPOINT_URL_STS",
        "The STS endpoint (before AWS_ENDPOINT_URL).",
    ),
    (
        "AWS_ENDPOINT_URL_IAM",
        "The IAM endpoint (rotate, hw enroll --create-mfa-device).",
    ),
    (
        "AWS_ENDPOINT_URL_SSO",
        "The IAM Identity Center portal endpoint.",
    ),
    (
        "AWS_ENDPOINT_URL_SSO_OIDC",
        "The IAM Identity Center OIDC endpoint.",
    ),
    (
        "AWS_SESSION_TOKEN_TTL",
        "Length of the MFA session (GetSessionToken), default 12h.",
    ),
    (
        "AWS_CHAINED_SESSION_TOKEN_TTL",
        "Length of the MFA session that roles start from, default 12h.",
    ),
    (
        "AWS_ASSUME_ROLE_TTL",
        "Length of role sessions, default 1h.",
    ),
    (
        "AWS_FEDERATION_TOKEN_TTL",
        "Length of vault login's console session without a role, default 1h.",
    ),
    ("AWS_MIN_TTL", "aws-vault's name for VAULT_MIN_REMAINING."),
    (
        "AWS_ACCESS_KEY_ID",
        "With add --env: the access key ID to store. Set for exec's command.",
    ),
    (
        "AWS_SECRET_ACCESS_KEY",
        "With add --env: the secret key to store. Set for exec's command.",
    ),
    (
        "AWS_SESSION_TOKEN",
        "Set for exec's command, with AWS_CREDENTIAL_EXPIRATION.",
    ),
    (
        "AWS_VAULT",
        "Set for exec's command to the profile's name; vault refuses to nest inside it.",
    ),
    (
        "VAULT_BACKEND",
        "The key store, as --backend: keychain, keyutils or file.",
    ),
    ("VAULT_PROMPT", "The prompt driver, as --prompt."),
    (
        "VAULT_FILE_PASSPHRASE",
        "The file store's passphrase, for headless machines.",
    ),
    (
        "VAULT_KEYCHAIN_SERVICE",
        "The keychain service name vault's items are stored under.",
    ),
    (
        "VAULT_CACHE_SCOPE",
        "Where keyutils caches sessions: user (default) or session (one login).",
    ),
    (
        "VAULT_MIN_REMAINING",
        "How long a cached session must still be valid to be reused (default 5m).",
    ),
    (
        "VAULT_STS_TIMEOUT",
        "How long one STS call may take, retries included (default 30s).",
    ),
    (
        "VAULT_TOKEN_WAIT",
        "How long exec waits for a profile's YubiKey to be inserted (default 15s).",
    ),
    (
        "VAULT_ROTATE_WAIT",
        "How long rotate waits for a new key to be accepted (default 30s).",
    ),
    (
        "VAULT_PIN",
        "The YubiKey's PIN, instead of asking (scripts, tests).",
    ),
    (
        "VAULT_NEW_PIN",
        "hw enroll: the new PIN, instead of asking.",
    ),
    (
        "VAULT_NEW_PUK",
        "hw enroll: the new PUK, instead of asking.",
    ),
    ("VAULT_FIDO2_PIN", "The FIDO2 key's PIN, instead of asking."),
    (
        "VAULT_PINENTRY",
        "The pinentry program of --prompt pinentry (a name on PATH or a path).",
    ),
    (
        "VAULT_ATTESTATION_ROOTS",
        "Extra attestation roots for hw enroll, path.pem[:path2.pem].",
    ),
    (
        "VAULT_ATTESTATION_INTERMEDIATES",
        "Extra intermediate CAs for hw enroll's attestation check, path.pem[:path2.pem]; never trusted on their own.",
    ),
    (
        "VAULT_FEDERATION_URL",
        "The console federation endpoint of vault login (tests; plain http only to 127.0.0.1).",
    ),
];

/// What `vault exec` sets for its command (with `--ecs-server`, the
/// container variables instead of the keys). Beside these it removes every
/// other inherited `AWS_*` variable but `output::KEEP_AWS`, and vault's
/// own secrets, `output::VAULT_SECRETS`.
pub const EXEC_SETS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_VAULT",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
];

/// The files vault reads and writes, each with the variable that moves it.
pub const FILES: &[Entry] = &[
    ("$AWS_CONFIG_FILE, ~/.aws/config", "Profiles and vault's vault_* settings; vault edits it only for sso populate and hw enroll."),
    ("$XDG_DATA_HOME/vault/store, ~/.local/share/vault/store", "The file backend's encrypted keys and sessions."),
    ("$XDG_DATA_HOME/vault/envelopes, ~/.local/share/vault/envelopes", "Keys wrapped by a YubiKey (one envelope per profile)."),
    ("$XDG_CONFIG_HOME/vault/tokens.json, ~/.config/vault/tokens.json", "Enrolled YubiKeys: serial, slot, public key."),
    ("$XDG_RUNTIME_DIR/vault/locks, else ~/.cache/vault/locks", "Lock files so concurrent vault processes ask for one code; nothing secret."),
];

/// vault's exit statuses.
pub const EXIT_STATUS: &[(u8, &str)] = &[
    (0, "Success."),
    (
        1,
        "An error: vault prints what happened and, where there is one, a hint line.",
    ),
    (2, "The command line could not be parsed (usage error)."),
];

/// What exec's exit status is beyond vault's own.
pub const EXEC_EXIT_STATUS: &str =
    "vault exec exits with its command's status, or 128 plus the signal that ended it.";

/// The everyday flows, as README shows them: the description, the command.
pub const EXAMPLES: &[Entry] = &[
    (
        "Store a profile's IAM access key (asked for on the terminal):",
        "vault add jonsmith",
    ),
    (
        "Run a command with a profile's temporary credentials:",
        "vault exec admin -- aws sts get-caller-identity",
    ),
    (
        "A shell with the credentials (exit it to drop them):",
        "vault exec admin",
    ),
    (
        "As an AWS CLI credential_process (in ~/.aws/config):",
        "credential_process = vault exec admin --json",
    ),
    (
        "Show profiles, stored keys and cached sessions:",
        "vault list",
    ),
    (
        "Open the AWS console signed in as a profile:",
        "vault login admin",
    ),
    (
        "Replace a profile's access key with a new one:",
        "vault rotate jonsmith",
    ),
    (
        "Put a YubiKey into service and move the profile's key onto it:",
        "vault hw enroll --profile jonsmith --create-mfa-device",
    ),
    (
        "A profile for every account and role of an sso-session:",
        "vault sso populate my-sso --region eu-west-1",
    ),
    (
        "Install bash completion (zsh and fish: vault completion zsh|fish):",
        "vault completion bash > ~/.local/share/bash-completion/completions/vault",
    ),
    (
        "Install this manual page:",
        "vault man > ~/.local/share/man/man1/vault.1",
    ),
];
