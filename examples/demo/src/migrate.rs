//! `--migrate-from` naming another library's app (`tower-sessions+…`, `actix+…`, `express+…`):
//! its source,
//! built from the flags, and the flags that only such a source takes.

use session_hyper::SessionLayerBuilder;

/// The flags of another library's source.
pub(crate) struct Args<'a> {
    /// `--migrate-key`: a tower-sessions `Key` (standard base64).
    pub(crate) migrate_key: Option<&'a str>,
    /// `--migrate-cookie`: the old cookie's name.
    pub(crate) migrate_cookie: Option<&'a str>,
    /// `--migrate-secret`s: an express app's secrets, newest first.
    pub(crate) migrate_secrets: &'a [String],
}

/// The builder moving sessions in from the library `url` names, and that library's name; the
/// builder back (`Err`) when `url` names one of our stores instead.
pub(crate) fn library(
    builder: SessionLayerBuilder,
    url: &str,
    args: &Args<'_>,
) -> Result<Result<(SessionLayerBuilder, &'static str), SessionLayerBuilder>, String> {
    if let Some(url) = url.strip_prefix("tower-sessions+") {
        if !args.migrate_secrets.is_empty() {
            return Err("--migrate-secret is for --migrate-from express+redis://...".into());
        }
        let source = tower_sessions(url, args)?;
        return Ok(Ok((builder.migrate_from_source(source), "tower-sessions")));
    }
    if let Some(url) = url.strip_prefix("actix+") {
        if !args.migrate_secrets.is_empty() {
            return Err("--migrate-secret is for --migrate-from express+redis://...".into());
        }
        let source = actix(url, args)?;
        return Ok(Ok((builder.migrate_from_source(source), "actix-session")));
    }
    if let Some(url) = url.strip_prefix("express+") {
        if args.migrate_key.is_some() {
            return Err("--migrate-key is not for express: it signs with --migrate-secret".into());
        }
        let source = express(url, args)?;
        return Ok(Ok((builder.migrate_from_source(source), "express-session")));
    }
    Ok(Err(builder))
}

/// Refuses the flags that only another library's source takes.
pub(crate) fn only_for_libraries(args: &Args<'_>) -> Result<(), String> {
    if args.migrate_key.is_some()
        || args.migrate_cookie.is_some()
        || !args.migrate_secrets.is_empty()
    {
        return Err(
            "--migrate-key, --migrate-secret and --migrate-cookie are for --migrate-from tower-sessions+..., actix+... or express+...".into(),
        );
    }
    Ok(())
}

/// The tower-sessions app's store at `url` (`redis://` or `postgres://`), with its key and
/// cookie name.
fn tower_sessions(url: &str, args: &Args<'_>) -> Result<session_migrate::TowerSessions, String> {
    use base64::Engine as _;
    let mut b = session_migrate::TowerSessions::builder();
    if let Some(name) = &args.migrate_cookie {
        b = b.cookie_name(*name);
    }
    if let Some(key) = args.migrate_key {
        let key = base64::engine::general_purpose::STANDARD
            .decode(key)
            .map_err(|_| "--migrate-key: not standard base64 (with padding)".to_owned())?;
        b = b.key(&key);
    }
    let built = if url.starts_with("redis://") {
        b.redis(url)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        b.postgres(url)
    } else {
        return Err("--migrate-from tower-sessions+...: redis:// or postgres:// (the URL is not shown: it may hold a password)".to_owned());
    };
    built.map_err(|e| format!("--migrate-from: {e}"))
}

/// The actix app's Redis store at `url`, with its `Key` and cookie name.
fn actix(url: &str, args: &Args<'_>) -> Result<session_migrate::Actix, String> {
    use base64::Engine as _;
    if !(url.starts_with("redis://")) {
        return Err(
            "--migrate-from actix+...: redis:// (the URL is not shown: it may hold a password)"
                .to_owned(),
        );
    }
    let Some(key) = args.migrate_key else {
        return Err("--migrate-from actix+...: give the app's Key with --migrate-key".into());
    };
    let key = base64::engine::general_purpose::STANDARD
        .decode(key)
        .map_err(|_| "--migrate-key: not standard base64 (with padding)".to_owned())?;
    let mut b = session_migrate::Actix::builder(&key);
    if let Some(name) = args.migrate_cookie {
        b = b.cookie_name(name);
    }
    b.redis(url).map_err(|e| format!("--migrate-from: {e}"))
}

/// The express app's connect-redis store at `url`, with its secrets and cookie name.
fn express(url: &str, args: &Args<'_>) -> Result<session_migrate::Express, String> {
    if !(url.starts_with("redis://")) {
        return Err(
            "--migrate-from express+...: redis:// (the URL is not shown: it may hold a password)"
                .to_owned(),
        );
    }
    if args.migrate_secrets.is_empty() {
        return Err(
            "--migrate-from express+...: give the app's secret with --migrate-secret".into(),
        );
    }
    let mut b = session_migrate::Express::builder();
    for secret in args.migrate_secrets {
        b = b.secret(secret);
    }
    if let Some(name) = &args.migrate_cookie {
        b = b.cookie_name(*name);
    }
    b.redis(url).map_err(|e| format!("--migrate-from: {e}"))
}
