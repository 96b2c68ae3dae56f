//! `vault clear [PROFILE]`: delete cached sessions.

use crate::app::App;
use crate::cli::ClearArgs;
use crate::error::Error;
use crate::session;

pub fn run(app: &App, args: &ClearArgs) -> Result<(), Error> {
    let cache = app.cache()?;
    let ids = match &args.profile {
        Some(p) => super::session_ids_involving(app, p),
        None => session::all(cache.as_ref())?
            .into_iter()
            .map(|(id, _)| id)
            .collect(),
    };
    let mut n = 0;
    for id in ids {
        if cache.remove(&id)? {
            n += 1;
        }
    }
    println!("Cleared {n} session(s).");
    Ok(())
}
