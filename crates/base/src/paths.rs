//! Where vault keeps its files. Nothing secret is ever written to these in clear.
//!
//! One rule for every folder, the XDG Base Directory one: a variable that
//! is unset, empty or relative is ignored (the spec says so for relative
//! values; a relative HOME would put files wherever vault happens to run),
//! and the fallback is under an absolute HOME, else under `/`, where an
//! ordinary user cannot write, so the error names the folder.

use std::ffi::OsString;
use std::path::PathBuf;

fn absolute(env: &dyn Fn(&str) -> Option<OsString>, var: &str) -> Option<PathBuf> {
    env(var).map(PathBuf::from).filter(|p| p.is_absolute())
}

fn xdg_in(env: &dyn Fn(&str) -> Option<OsString>, var: &str, fallback: &str) -> PathBuf {
    absolute(env, var).unwrap_or_else(|| {
        absolute(env, "HOME")
            .unwrap_or_else(|| PathBuf::from("/"))
            .join(fallback)
    })
}

fn xdg(var: &str, fallback: &str) -> PathBuf {
    xdg_in(&|v| std::env::var_os(v), var, fallback)
}

/// `$XDG_CACHE_HOME/vault` or `~/.cache/vault`: lock files, nothing secret.
pub fn cache_dir() -> PathBuf {
    xdg("XDG_CACHE_HOME", ".cache").join("vault")
}

/// `$XDG_DATA_HOME/vault` or `~/.local/share/vault`: the file store, envelopes.
pub fn data_dir() -> PathBuf {
    xdg("XDG_DATA_HOME", ".local/share").join("vault")
}

/// `$XDG_CONFIG_HOME/vault` or `~/.config/vault`: tokens.json.
pub fn config_dir() -> PathBuf {
    xdg("XDG_CONFIG_HOME", ".config").join("vault")
}

/// `$XDG_RUNTIME_DIR/vault` (per user, tmpfs), when there is one.
pub fn runtime_dir() -> Option<PathBuf> {
    absolute(&|v| std::env::var_os(v), "XDG_RUNTIME_DIR").map(|d| d.join("vault"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |v| {
            pairs
                .iter()
                .find(|(k, _)| *k == v)
                .map(|(_, x)| OsString::from(x))
        }
    }

    #[test]
    fn relative_or_empty_values_are_ignored_and_no_path_is_ever_relative() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("XDG_CONFIG_HOME", "/x/config"), ("HOME", "/home/u")],
                "/x/config",
            ),
            (
                &[("XDG_CONFIG_HOME", "config"), ("HOME", "/home/u")],
                "/home/u/.config",
            ),
            (
                &[("XDG_CONFIG_HOME", ""), ("HOME", "/home/u")],
                "/home/u/.config",
            ),
            (&[("HOME", "/home/u")], "/home/u/.config"),
            (&[("HOME", "u")], "/.config"),
            (&[], "/.config"),
        ];
        for (pairs, want) in cases {
            let got = xdg_in(&env(pairs), "XDG_CONFIG_HOME", ".config");
            assert_eq!(got, PathBuf::from(want), "{pairs:?}");
            assert!(got.is_absolute());
        }
    }
}
