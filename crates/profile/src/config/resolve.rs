//! From a profile name to its resolved chain of profiles, the way
//! aws-vault's `ConfigLoader` does (see the module above).

use super::*;

impl ConfigFile {
    /// Resolves `name` with the file alone: every profile in the chain must
    /// be in the file (only `default` may be missing).
    pub fn resolve(
        &self,
        name: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ProfileChain, ConfigError> {
        self.resolve_with(name, env, &|_| false)
    }

    /// Resolves `name`, knowing which profiles have long-term keys in a
    /// store. As in aws-vault (`getSourceCreds`), a profile with stored keys
    /// ends the chain even if it names a `source_profile`, and a profile
    /// with stored keys need not be in the file (`vault add NAME` then
    /// `vault exec NAME` works with no config at all).
    pub fn resolve_with(
        &self,
        name: &str,
        env: &dyn Fn(&str) -> Option<String>,
        has_stored_keys: &dyn Fn(&str) -> bool,
    ) -> Result<ProfileChain, ConfigError> {
        if self.profile_section(name).is_none() && name != DEFAULT_PROFILE && !has_stored_keys(name)
        {
            return Err(ConfigError::UnknownProfile {
                file: self.display.clone(),
                name: name.to_owned(),
                suggestion: self.suggest(name),
            });
        }
        let mut links: Vec<Profile> = Vec::new();
        let mut current = name.to_owned();
        loop {
            let link = self.link(&current, links.is_empty(), env)?;
            let next = match &link.source_profile {
                Some(next) if !has_stored_keys(&current) => next.clone(),
                _ => {
                    links.push(link);
                    break;
                }
            };
            links.push(link);
            if let Some(pos) = links.iter().position(|l| l.name == next) {
                let mut cycle: Vec<String> = links[pos..].iter().map(|l| l.name.clone()).collect();
                cycle.push(next);
                return Err(ConfigError::Loop {
                    file: self.display.clone(),
                    key: "source_profile",
                    cycle,
                });
            }
            if self.profile_section(&next).is_none() && !has_stored_keys(&next) {
                let (line, section) = match links.last().and_then(|l| l.origin("source_profile")) {
                    Some(Origin::File { section, line }) => (*line, section.clone()),
                    _ => (0, String::new()),
                };
                return Err(ConfigError::MissingProfile {
                    file: self.display.clone(),
                    line,
                    section,
                    key: "source_profile",
                    suggestion: self.suggest(&next),
                    name: next,
                });
            }
            current = next;
        }
        links.reverse();
        Ok(ProfileChain { links })
    }

    /// One profile with its inherited settings and the environment applied:
    /// aws-vault's `populateFromEnv` then `populateFromConfigFile`.
    fn link(
        &self,
        name: &str,
        is_target: bool,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Profile, ConfigError> {
        let own = self.profile_section(name);
        let mut fields = Fields {
            config: self,
            inherited: self.inherited(name)?,
            origins: BTreeMap::new(),
            env,
        };
        let mut p = Profile {
            name: name.to_owned(),
            in_file: own.is_some(),
            file: self.display.clone(),
            ..Profile::default()
        };
        // Region and MFA serial come from the environment for every link:
        // aws-vault calls populateFromEnv for each profile it loads.
        p.region = fields.take("region", &["AWS_REGION", "AWS_DEFAULT_REGION"])?;
        p.mfa_serial = fields.take("mfa_serial", &["AWS_MFA_SERIAL"])?;
        let target_only = |vars: &'static [&'static str]| -> &'static [&'static str] {
            if is_target {
                vars
            } else {
                &[]
            }
        };
        p.role_arn = fields.take("role_arn", target_only(&["AWS_ROLE_ARN"]))?;
        p.role_session_name =
            fields.take("role_session_name", target_only(&["AWS_ROLE_SESSION_NAME"]))?;
        p.source_identity =
            fields.take("source_identity", target_only(&["AWS_SOURCE_IDENTITY"]))?;
        p.external_id = fields.take("external_id", &[])?;
        p.mfa_process = fields.take("mfa_process", &[])?;
        p.endpoint_url = fields.take("endpoint_url", &[])?;
        p.credential_process = fields.take("credential_process", &[])?;
        p.credential_source = fields.take("credential_source", &[])?;
        p.source_profile = fields.take("source_profile", &[])?;
        // A profile that names itself (often by inheriting `source_profile`
        // from [default] or an included profile) has no source: its keys
        // are its own. aws-vault: "Ignore source_profile if it recursively
        // refers to the profile".
        if p.source_profile.as_deref() == Some(name) {
            p.source_profile = None;
        }
        p.include_profile = own
            .and_then(|s| s.get("include_profile"))
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        if let Some(raw) = fields.take("duration_seconds", &[])? {
            let secs = raw
                .parse::<u64>()
                .ok()
                .filter(|s| DURATION_RANGE.contains(s));
            p.duration_seconds = Some(secs.ok_or_else(|| {
                fields.invalid(
                    "duration_seconds",
                    &raw,
                    "must be a number of seconds from 900 to 129600 (15 minutes to 36 hours)",
                )
            })?);
        }
        if let Some(raw) = fields.take("session_tags", target_only(&["AWS_SESSION_TAGS"]))? {
            p.session_tags = parse_session_tags(&raw)
                .map_err(|problem| fields.invalid("session_tags", &raw, &problem))?;
        }
        if let Some(raw) = fields.take(
            "transitive_session_tags",
            target_only(&["AWS_TRANSITIVE_TAGS"]),
        )? {
            p.transitive_session_tags = raw
                .split(',')
                .map(|t| t.trim_matches(WS))
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect();
        }
        let keys: Vec<String> = fields.inherited.keys().map(|k| (*k).to_owned()).collect();
        for key in keys {
            let map = if key.starts_with("vault_") {
                &mut p.vault
            } else if key.starts_with("sso_") {
                &mut p.sso
            } else if key.starts_with("web_identity_token_") {
                &mut p.web_identity
            } else {
                continue;
            };
            if let Some(value) = fields.take(&key, &[])? {
                map.insert(key, value);
            }
        }
        p.sts_endpoint = fields.sts_endpoint()?;
        p.origins = fields.origins;
        Ok(p)
    }

    /// The settings `name` sees, each with the section it came from: its
    /// own, then its `include_profile` chain, then `[default]`.
    fn inherited(&self, name: &str) -> Result<BTreeMap<&str, (&Entry, &Section)>, ConfigError> {
        let mut out: BTreeMap<&str, (&Entry, &Section)> = BTreeMap::new();
        let mut path: Vec<String> = Vec::new();
        let mut current = name.to_owned();
        // The `include_profile` entry that led to `current`, if any.
        let mut via: Option<(&Entry, &Section)> = None;
        loop {
            if let Some(pos) = path.iter().position(|p| *p == current) {
                if via.is_none() {
                    // Falling back to [default] once [default] was already
                    // read (say [default] includes a fragment) adds nothing;
                    // aws-vault calls this a loop, which breaks every
                    // profile as soon as [default] uses include_profile.
                    break;
                }
                let mut cycle = path[pos..].to_vec();
                cycle.push(current);
                return Err(ConfigError::Loop {
                    file: self.display.clone(),
                    key: "include_profile",
                    cycle,
                });
            }
            let section = self.profile_section(&current);
            if let (None, Some((entry, from))) = (section, via) {
                return Err(ConfigError::MissingProfile {
                    file: self.display.clone(),
                    line: entry.line,
                    section: from.header.clone(),
                    key: "include_profile",
                    name: current.clone(),
                    suggestion: self.suggest(&current),
                });
            }
            path.push(current.clone());
            let Some(section) = section else {
                if current == DEFAULT_PROFILE {
                    break;
                }
                current = DEFAULT_PROFILE.to_owned();
                via = None;
                continue;
            };
            for entry in &section.entries {
                if !entry.value.is_empty() && entry.key != "include_profile" {
                    out.entry(entry.key.as_str()).or_insert((entry, section));
                }
            }
            match section
                .entry("include_profile")
                .filter(|e| !e.value.is_empty())
            {
                Some(include) => {
                    current = include.value.clone();
                    via = Some((include, section));
                }
                None if current != DEFAULT_PROFILE => {
                    current = DEFAULT_PROFILE.to_owned();
                    via = None;
                }
                None => break,
            }
        }
        Ok(out)
    }

    /// " (did you mean ...?)" for a name that is not a profile.
    fn suggest(&self, name: &str) -> String {
        let names = self.profile_names();
        if let Some(stray) = self
            .sections
            .iter()
            .find(|s| s.kind == SectionKind::Other && s.name == name)
        {
            return format!(
                "; line {} has [{}], but in this file a profile's header is [profile {}]",
                stray.line, stray.header, name
            );
        }
        let mut near: Vec<(usize, &str)> = names
            .iter()
            .filter_map(|&n| {
                let d = edit_distance(&name.to_lowercase(), &n.to_lowercase())?;
                // Containment only for names long enough to mean something:
                // every name contains "a".
                let (short, long) = if name.len() < n.len() {
                    (name, n)
                } else {
                    (n, name)
                };
                let close = d <= (name.chars().count() / 3).max(2)
                    || (short.chars().count() >= 3 && long.contains(short));
                close.then_some((d, n))
            })
            .collect();
        near.sort();
        near.truncate(3);
        if !near.is_empty() {
            let list: Vec<String> = near.iter().map(|(_, n)| format!("{n:?}")).collect();
            return format!("; did you mean {}?", list.join(" or "));
        }
        match names.len() {
            0 => "; it has no profiles".to_owned(),
            1..=8 => format!("; its profiles are {}", names.join(", ")),
            _ => String::new(),
        }
    }
}

/// Gathers a link's settings, recording where each came from.
pub(super) struct Fields<'a> {
    config: &'a ConfigFile,
    inherited: BTreeMap<&'a str, (&'a Entry, &'a Section)>,
    origins: BTreeMap<String, Origin>,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Fields<'_> {
    /// The value from the first of `vars` that is set and not empty, else
    /// from the file.
    fn take(&mut self, key: &str, vars: &[&'static str]) -> Result<Option<String>, ConfigError> {
        for &var in vars {
            if let Some(value) = nonempty((self.env)(var)) {
                self.origins.insert(key.to_owned(), Origin::Env(var));
                return Ok(Some(value));
            }
        }
        let Some(&(entry, section)) = self.inherited.get(key) else {
            return Ok(None);
        };
        let origin = Origin::File {
            section: section.header.clone(),
            line: entry.line,
        };
        self.origins.insert(key.to_owned(), origin);
        if entry.value.contains('\n') {
            return Err(self.invalid(
                key,
                &entry.value,
                &format!(
                    "runs onto line {} because that line is indented; remove the indentation",
                    entry.line + 1
                ),
            ));
        }
        Ok(Some(entry.value.clone()))
    }

    /// An error about `key`'s value, naming where the value came from.
    fn invalid(&self, key: &str, value: &str, problem: &str) -> ConfigError {
        let shown = truncate(value);
        match self.origins.get(key) {
            Some(Origin::Env(var)) => ConfigError::InvalidEnv {
                var,
                problem: format!("{problem}, found {shown:?}"),
            },
            Some(Origin::File { section, line }) => ConfigError::InvalidValue {
                file: self.config.display.clone(),
                line: *line,
                section: section.clone(),
                key: key.to_owned(),
                problem: format!("{problem}, found {shown:?}"),
            },
            None => ConfigError::InvalidValue {
                file: self.config.display.clone(),
                line: 0,
                section: String::new(),
                key: key.to_owned(),
                problem: format!("{problem}, found {shown:?}"),
            },
        }
    }

    /// Where STS calls for this link go, in the AWS SDKs' order:
    /// `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`, the profile's
    /// `[services NAME]` `sts = endpoint_url = …`, the profile's
    /// `endpoint_url`.
    fn sts_endpoint(&mut self) -> Result<Option<String>, ConfigError> {
        const KEY: &str = "sts_endpoint";
        for var in ["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"] {
            if let Some(url) = nonempty((self.env)(var)) {
                self.origins.insert(KEY.to_owned(), Origin::Env(var));
                return Ok(Some(url));
            }
        }
        if let Some(services) = self.take("services", &[])? {
            let service_url = self
                .config
                .section(SectionKind::Services, &services)
                .and_then(|s| s.entry("sts"))
                .and_then(|e| {
                    let sub = e.nested.iter().find(|s| s.key == "endpoint_url")?;
                    Some((sub.value.clone(), sub.line))
                });
            if let Some((url, line)) = service_url.filter(|(url, _)| !url.is_empty()) {
                let section = format!("services {services}");
                self.origins
                    .insert(KEY.to_owned(), Origin::File { section, line });
                return Ok(Some(url));
            }
        }
        if let Some(origin) = self.origins.get("endpoint_url").cloned() {
            let url = self
                .inherited
                .get("endpoint_url")
                .map(|(e, _)| e.value.clone());
            self.origins.insert(KEY.to_owned(), origin);
            return Ok(url);
        }
        Ok(None)
    }
}

/// Where a resolved setting came from, for messages and `--debug` logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A line of the config file, in the section with this header
    /// (`profile common`, `default`).
    File { section: String, line: usize },
    /// An environment variable.
    Env(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { section, line } => write!(f, "[{section}] line {line}"),
            Origin::Env(var) => write!(f, "${var}"),
        }
    }
}

/// One profile as resolved: its own settings, what it inherited, and the
/// environment's overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    /// Whether the file has a section for it (a profile may exist only as
    /// stored keys).
    pub in_file: bool,
    pub region: Option<String>,
    pub mfa_serial: Option<String>,
    pub role_arn: Option<String>,
    /// After resolution: `None` also when it named the profile itself.
    pub source_profile: Option<String>,
    pub role_session_name: Option<String>,
    pub external_id: Option<String>,
    /// Seconds, within `DURATION_RANGE`.
    pub duration_seconds: Option<u64>,
    /// The profile's own `include_profile` (not inherited).
    pub include_profile: Option<String>,
    pub mfa_process: Option<String>,
    pub endpoint_url: Option<String>,
    pub session_tags: BTreeMap<String, String>,
    pub transitive_session_tags: Vec<String>,
    pub source_identity: Option<String>,
    pub credential_process: Option<String>,
    /// The AWS CLI's `credential_source` (Environment, Ec2InstanceMetadata,
    /// EcsContainer): kept to say vault does not support it.
    pub credential_source: Option<String>,
    /// Every `sso_*` setting (`sso_session`, `sso_start_url`, …).
    pub sso: BTreeMap<String, String>,
    /// `web_identity_token_file` / `web_identity_token_process`.
    pub web_identity: BTreeMap<String, String>,
    /// vault's own `vault_*` settings, keyed by the full name
    /// (`vault_backend`).
    pub vault: BTreeMap<String, String>,
    file: String,
    sts_endpoint: Option<String>,
    origins: BTreeMap<String, Origin>,
}

impl Profile {
    /// Whether this link assumes a role.
    pub fn uses_role(&self) -> bool {
        self.role_arn.is_some()
    }

    pub fn mfa_serial(&self) -> Option<&str> {
        self.mfa_serial.as_deref()
    }

    /// The STS endpoint for this link, if not the default one.
    pub fn sts_endpoint(&self) -> Option<&str> {
        self.sts_endpoint.as_deref()
    }

    /// A `vault_*` setting by its full key.
    pub fn vault_value(&self, key: &str) -> Option<&str> {
        self.vault.get(key).map(String::as_str)
    }

    /// Where a setting's value came from (`sts_endpoint` included).
    pub fn origin(&self, key: &str) -> Option<&Origin> {
        self.origins.get(key)
    }

    pub fn uses_sso(&self) -> bool {
        !self.sso.is_empty()
    }

    /// Whether the profile gets its credentials from IAM Identity Center:
    /// any `sso_*` key says so (and [`ConfigFile::sso`] names what is
    /// missing when the others are not there).
    pub fn is_sso_source(&self) -> bool {
        self.uses_sso()
    }

    /// Why vault cannot get credentials for this profile by itself, if it
    /// would have to use a source vault does not support. Meant for a link
    /// with no stored keys and no `source_profile`: aws-vault, too, looks
    /// at SSO and web identity only then.
    pub fn unsupported(&self) -> Option<ConfigError> {
        // Name the key that makes it SSO, not whichever sorts first.
        let sso_key = ["sso_session", "sso_start_url"]
            .into_iter()
            .find(|k| self.sso.contains_key(*k))
            .or_else(|| self.sso.keys().next().map(String::as_str));
        let (feature, key) = if let Some(key) = sso_key {
            (SSO, key)
        } else if let Some(key) = self.web_identity.keys().next() {
            ("web identity federation", key.as_str())
        } else if self.credential_source.is_some() {
            (
                "an instance, container or environment credential source",
                "credential_source",
            )
        } else {
            return None;
        };
        let origin = self
            .origin(key)
            .map(|o| format!("{} {o}", self.file))
            .unwrap_or_else(|| self.file.clone());
        Some(ConfigError::Unsupported {
            profile: self.name.clone(),
            feature,
            key: key.to_owned(),
            origin,
        })
    }
}

/// A resolved profile and its `source_profile` chain, from the root (whose
/// stored keys are used) to the target (the profile asked for). Each link
/// with a role assumes it with the credentials of the link before it; the
/// root's own role, if it has one, is assumed with its stored keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileChain {
    /// Never empty.
    links: Vec<Profile>,
}

impl ProfileChain {
    /// A chain from links ordered root first; `None` if there are none.
    pub fn from_links(links: Vec<Profile>) -> Option<ProfileChain> {
        (!links.is_empty()).then_some(ProfileChain { links })
    }

    pub fn links(&self) -> &[Profile] {
        &self.links
    }

    /// The profile whose long-term keys are used.
    pub fn root(&self) -> &Profile {
        &self.links[0]
    }

    /// The profile that was asked for.
    pub fn target(&self) -> &Profile {
        &self.links[self.links.len() - 1]
    }

    /// The STS endpoint for calls made as the target.
    pub fn sts_endpoint(&self) -> Option<&str> {
        self.target().sts_endpoint()
    }
}

impl fmt::Display for ProfileChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.links.iter().map(|l| l.name.as_str()).collect();
        f.write_str(&names.join(" → "))
    }
}

/// `Key1=Value1,Key2=Value2`, as aws-vault's `SetSessionTags` reads it
/// (spaces around keys and values ignored), but a tag set twice is an error
/// rather than a silent overwrite: STS would reject it anyway.
pub(super) fn parse_session_tags(raw: &str) -> Result<BTreeMap<String, String>, String> {
    let mut tags = BTreeMap::new();
    for item in raw.split(',') {
        let Some((key, value)) = item.split_once('=') else {
            return Err("must be Key1=Value1,Key2=Value2".to_owned());
        };
        let key = key.trim_matches(WS);
        if key.is_empty() {
            return Err("has a tag with no key; it must be Key1=Value1,Key2=Value2".to_owned());
        }
        let seen = tags.keys().any(|k: &String| k.eq_ignore_ascii_case(key));
        if seen {
            return Err(format!("sets tag {key:?} twice"));
        }
        tags.insert(key.to_owned(), value.trim_matches(WS).to_owned());
    }
    Ok(tags)
}

/// Levenshtein distance, for "did you mean"; `None` for names too long to
/// be worth comparing.
pub(super) fn edit_distance(a: &str, b: &str) -> Option<usize> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len() > 64 || b.len() > 64 {
        return None;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut row = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            row[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(row[j] + 1);
        }
        prev = row;
    }
    prev.last().copied()
}
