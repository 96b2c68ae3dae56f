//! What every command needs, opened lazily: the config file, the store,
//! the session cache, the prompt. A cache hit opens only the config and
//! the cache; the store and the prompt are opened when first needed.

use crate::error::Error;
use std::cell::OnceCell;
use std::time::Duration;
use vault_base::secret::{MfaCode, Passphrase};
use vault_profile::config::{self, ConfigFile};
use vault_profile::session::SessionCache;
use vault_prompt::{self as prompt, Prompt, PromptError, PromptKind};
use vault_secrets::store::{self, Backend, Store, StoreOptions};

pub use vault_profile::session::DEFAULT_MIN_REMAINING;

pub struct App {
    pub backend: Backend,
    pub prompt_kind: PromptKind,
    config: OnceCell<ConfigFile>,
    store: OnceCell<Box<dyn Store>>,
    prompt: LazyPrompt,
}

/// Finds a prompt driver on first use, so commands that never ask (a cache
/// hit, `list`) work where no terminal or display exists.
pub struct LazyPrompt {
    kind: PromptKind,
    /// A command vault started owns the terminal: never use it.
    detached: bool,
    driver: OnceCell<Result<Box<dyn Prompt>, String>>,
}

impl LazyPrompt {
    fn get(&self) -> Result<&dyn Prompt, PromptError> {
        // Keep the driver's own reason: wrapping the whole error again
        // would print "no way to ask you: no way to ask you: ...".
        match self.driver.get_or_init(|| {
            let found = if self.detached {
                prompt::detached_driver(self.kind)
            } else {
                prompt::driver(self.kind)
            };
            found.map_err(|e| match e {
                PromptError::Unavailable(reason) => reason,
                other => other.to_string(),
            })
        }) {
            Ok(d) => Ok(d.as_ref()),
            Err(e) => Err(PromptError::Unavailable(e.clone())),
        }
    }
}

impl Prompt for LazyPrompt {
    fn mfa_code(&self, profile: &str, mfa_serial: &str) -> Result<MfaCode, PromptError> {
        self.get()?.mfa_code(profile, mfa_serial)
    }
    fn secret(&self, label: &str) -> Result<Passphrase, PromptError> {
        self.get()?.secret(label)
    }
    fn text(&self, label: &str) -> Result<String, PromptError> {
        self.get()?.text(label)
    }
    fn notify(&self, message: &str) {
        match self.get() {
            Ok(p) => p.notify(message),
            // No driver can ask, yet a notice still reaches the desktop,
            // and stderr, which never carries credentials.
            Err(_) => prompt::notify_without_terminal(message, self.detached),
        }
    }
    fn touch(&self, request: &prompt::TouchRequest) -> Box<dyn prompt::TouchNotice> {
        match self.get() {
            Ok(p) => p.touch(request),
            // A touch needs no driver to ask anything: under an IDE's
            // credential_process it is shown as a desktop notification.
            Err(_) => prompt::touch_without_terminal(request, self.detached),
        }
    }
}

impl App {
    pub fn new(backend: Option<&str>, prompt: Option<&str>) -> Result<App, Error> {
        let backend = match backend {
            None => Backend::Keychain,
            Some(b) => Backend::parse(b).ok_or_else(|| {
                Error::usage(
                    format!("unknown backend {b:?}"),
                    Some(format!("choose one of: {}", Backend::NAMES.join(", "))),
                )
            })?,
        };
        let prompt_kind = match prompt {
            None => PromptKind::Auto,
            Some(p) => PromptKind::parse(p)?,
        };
        Ok(App {
            backend,
            prompt_kind,
            config: OnceCell::new(),
            store: OnceCell::new(),
            prompt: LazyPrompt {
                kind: prompt_kind,
                detached: false,
                driver: OnceCell::new(),
            },
        })
    }

    /// The same choices for use while a command vault started owns the
    /// terminal (`exec --ecs-server` renewals): its prompt never reads
    /// the terminal, so keystrokes stay the command's; it asks through a
    /// graphical pinentry or a dialog, and shows touches as desktop
    /// notifications.
    pub fn detached(&self) -> App {
        App {
            backend: self.backend,
            prompt_kind: self.prompt_kind,
            config: OnceCell::new(),
            store: OnceCell::new(),
            prompt: LazyPrompt {
                kind: self.prompt_kind,
                detached: true,
                driver: OnceCell::new(),
            },
        }
    }

    pub fn config(&self) -> Result<&ConfigFile, Error> {
        if let Some(c) = self.config.get() {
            return Ok(c);
        }
        let c = ConfigFile::load(config::default_path())?;
        Ok(self.config.get_or_init(|| c))
    }

    pub fn prompt(&self) -> &dyn Prompt {
        &self.prompt
    }

    pub fn store_options() -> StoreOptions {
        let mut o = StoreOptions::from_env();
        if let Some(s) = &vault_base::settings::Settings::get().keychain_service {
            o.service = s.clone();
        }
        o
    }

    pub fn store(&self) -> Result<&dyn Store, Error> {
        if let Some(s) = self.store.get() {
            return Ok(s.as_ref());
        }
        log::debug!(target: "vault", "opening the {} store", self.backend.name());
        let s = store::open(self.backend, &Self::store_options(), &self.prompt)?;
        Ok(self.store.get_or_init(|| s).as_ref())
    }

    /// The session cache: the kernel keyring where it works, else the store.
    pub fn cache(&self) -> Result<Box<dyn SessionCache>, Error> {
        #[cfg(target_os = "linux")]
        match vault_profile::session::kernel::KernelCache::open() {
            Ok(k) => return Ok(Box::new(k)),
            Err(e) => {
                log::debug!(target: "vault", "kernel keyring unavailable ({e}); caching sessions in the {} store", self.backend.name())
            }
        }
        let store = store::open(self.backend, &Self::store_options(), &self.prompt)?;
        Ok(Box::new(vault_aws::store_cache::StoreCache::new(store)))
    }

    /// How much validity a cached session must have left to be reused.
    pub fn min_remaining() -> Duration {
        vault_profile::session::min_remaining()
    }
}
