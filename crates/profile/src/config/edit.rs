//! Changing one setting in place and writing the file back atomically.

use super::*;

impl ConfigFile {
    /// Sets `key = value` in a profile's section, in memory: the line is
    /// edited in place if the key is there (keeping its comment), added at
    /// the end of the section if not, and a `[profile NAME]` section is
    /// appended if the profile has none. Call `save` to write the file.
    pub fn set_value(&mut self, profile: &str, key: &str, value: &str) -> Result<(), ConfigError> {
        let key = key.to_ascii_lowercase();
        self.check_edit(profile, &key, value)?;
        let eol = if self.text.contains("\r\n") {
            "\r\n"
        } else {
            "\n"
        };
        let mut lines: Vec<String> = self.text.split_inclusive('\n').map(str::to_owned).collect();
        let new_line = format!("{key} = {value}{eol}");
        match self.profile_section(profile) {
            Some(section) => match section.entry(&key) {
                Some(entry) => {
                    let single = entry.line == entry.last_line && !entry.value.is_empty();
                    match (entry.value_span, single) {
                        (Some((start, end)), true) => {
                            let old = &lines[entry.line - 1];
                            lines[entry.line - 1] =
                                format!("{}{value}{}", &old[..start], &old[end..]);
                        }
                        _ => {
                            lines.splice(entry.line - 1..entry.last_line, [new_line]);
                        }
                    }
                }
                None => {
                    let at = section.last_line;
                    if let Some(prev) = lines.get_mut(at - 1) {
                        if !prev.ends_with('\n') {
                            prev.push_str(eol);
                        }
                    }
                    lines.insert(at.min(lines.len()), new_line);
                }
            },
            None => {
                if let Some(last) = lines.last_mut() {
                    if !last.ends_with('\n') {
                        last.push_str(eol);
                    }
                    lines.push(eol.to_owned());
                }
                let header = if profile == DEFAULT_PROFILE {
                    "[default]".to_owned()
                } else {
                    format!("[profile {profile}]")
                };
                lines.push(format!("{header}{eol}"));
                lines.push(new_line);
            }
        }
        let text = lines.concat();
        let mut edited = ConfigFile::parse_named(&text, self.display.clone())?;
        let reads_back = edited.profile_section(profile).and_then(|s| s.get(&key)) == Some(value);
        if !reads_back {
            return Err(self.edit_error(format!(
                "setting {key} in profile {profile:?} would not read back as {value:?}"
            )));
        }
        edited.path = self.path.take();
        edited.on_disk = self.on_disk.take();
        edited.bom = self.bom;
        *self = edited;
        Ok(())
    }

    /// Refuses what the file could not hold as given: the value must read
    /// back exactly, so no line breaks, no edge whitespace (trimmed on
    /// reading), and no " #" or " ;" (read as a comment).
    fn check_edit(&self, profile: &str, key: &str, value: &str) -> Result<(), ConfigError> {
        let bad_name = profile.is_empty()
            || profile != profile.trim_matches(WS)
            || profile.contains(['[', ']', '#', ';'])
            || profile.chars().any(char::is_control);
        if bad_name {
            return Err(self.edit_error(format!("{profile:?} cannot be a profile name")));
        }
        let key_ok = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !key_ok {
            return Err(self.edit_error(format!("{key:?} cannot be a setting name")));
        }
        let bad_value = value.is_empty()
            || value != value.trim_matches(WS)
            || value.chars().any(char::is_control)
            || inline_comment_start(value).is_some();
        if bad_value {
            return Err(self.edit_error(format!(
                "{value:?} cannot be written as the value of {key} (empty, edge spaces, line breaks, or \" #\" / \" ;\" which would read as a comment)"
            )));
        }
        Ok(())
    }

    fn edit_error(&self, problem: String) -> ConfigError {
        ConfigError::Edit {
            file: self.display.clone(),
            problem,
        }
    }

    /// The file's bytes as `save` writes them.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.text.len() + 3);
        if self.bom {
            out.extend_from_slice("\u{feff}".as_bytes());
        }
        out.extend_from_slice(self.text.as_bytes());
        out
    }

    /// Writes the file back where it was loaded from, atomically (a temp
    /// file in the same directory, then rename) and with the old file's
    /// permissions (0600 for a new one). Refuses if the file changed on
    /// disk since it was read, rather than lose that change.
    pub fn save(&mut self) -> Result<(), ConfigError> {
        let Some(path) = self.path.clone() else {
            return Err(self.edit_error("it was not read from a file".to_owned()));
        };
        let now = match fs::read(&path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(ConfigError::Read {
                    file: self.display.clone(),
                    source,
                })
            }
        };
        if now != self.on_disk {
            return Err(self.edit_error("it changed since vault read it".to_owned()));
        }
        let bytes = self.to_bytes();
        write_atomic(&path, &bytes).map_err(|source| ConfigError::Write {
            file: self.display.clone(),
            source,
        })?;
        self.on_disk = Some(bytes);
        Ok(())
    }
}

/// Replaces `path` with `bytes` so a reader sees the old file or the new
/// one, never half of one.
pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    // Follow a symlink (a config kept in a dotfiles repository) so the link
    // survives and its target is what changes.
    let target = match fs::canonicalize(path) {
        Ok(real) => real,
        Err(e) if e.kind() == io::ErrorKind::NotFound => path.to_path_buf(),
        Err(e) => return Err(e),
    };
    vault_base::atomic::write(
        &target,
        bytes,
        vault_base::atomic::Existing::KeepPermissions,
    )
}
