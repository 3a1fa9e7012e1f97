//! Who asks, and what they may do: the credentials checked once per request, and the
//! backend serving a tenant.

use super::*;

/// Who asks: the request's headers, its path and query as received (what an obshell
/// header must name), and the client's address (what failed attempts are counted
/// by).
pub struct Caller {
    pub headers: HeaderMap,
    pub uri: String,
    pub peer: Option<std::net::IpAddr>,
}

/// What the sessions page sends with every request (see [`Caller::answer`] and
/// [`Caller::same_origin_proof`]).
pub const PAGE_HEADER: (&str, &str) = ("x-requested-with", "session_exporter");

impl Caller {
    /// The sessions page signs in with its own form: a refusal it gets carries no
    /// challenge, which would make the browser ask for basic auth in a dialog.
    pub(super) fn answer(&self, mut response: Response) -> Response {
        if self
            .headers
            .get(PAGE_HEADER.0)
            .is_some_and(|v| v == PAGE_HEADER.1)
        {
            response.headers_mut().remove(header::WWW_AUTHENTICATE);
        }
        response
    }

    /// The same-origin proof of a request that ends sessions. A browser tells where
    /// a request comes from (`Origin`, `Sec-Fetch-Site`); from a browser, a kill must
    /// come from this exporter's own page, with the page's header, which no other
    /// site can add without a CORS preflight this server never grants. Another site
    /// cannot make a signed-in browser (whose basic auth it sends by itself) end
    /// sessions. Clients that are not browsers (obshell's SDK, curl) send none of
    /// these headers and are not concerned: they hold their credentials themselves.
    pub(super) fn same_origin_proof(&self) -> Result<(), Failure> {
        let browser =
            self.headers.contains_key("origin") || self.headers.contains_key("sec-fetch-site");
        if !browser {
            return Ok(());
        }
        let from_page = self
            .headers
            .get(PAGE_HEADER.0)
            .is_some_and(|v| v == PAGE_HEADER.1);
        let foreign = crate::web::cross_origin(&self.headers);
        if foreign.is_none() && from_page {
            return Ok(());
        }
        Err(Failure::forbidden(format!(
            "a browser may end sessions only from this exporter's sessions page ({}): nothing \
             was ended",
            foreign.unwrap_or_else(|| "this origin, without the page's header".to_string())
        )))
    }

    /// The client's address for a log line: the address, or `unknown` (a request
    /// that did not come through the listener, as in unit tests).
    pub fn peer_display(&self) -> String {
        self.peer
            .map_or_else(|| "unknown".to_string(), |ip| ip.to_string())
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self {
            headers: parts.headers.clone(),
            uri: parts.uri.path_and_query().map_or_else(
                || parts.uri.path().to_string(),
                |pq| pq.as_str().to_string(),
            ),
            peer: parts
                .extensions
                .get::<crate::web::ClientAddr>()
                .map(|addr| addr.0.ip()),
        })
    }
}

/// An obshell header (`X-OCS-Header`, when `obshell_auth` is set), or the bearer
/// token, or basic auth users of --web.config.file, or the explicit opt-out: who
/// asks, and the verified obshell header. A session API enabled with none of them
/// (refused at load) stays closed; a credential that `access` names nowhere is
/// refused (403) here, before any tenant is looked at.
pub(super) async fn authorize(
    current: &Applied,
    state: &ApiState,
    caller: &Caller,
) -> Result<(Principal, Option<obshell::Verified>), Failure> {
    let settings = &current.settings;
    if !settings.enabled {
        return Err(disabled());
    }
    let (who, verified) = if let Some(header) = caller.headers.get(obshell::HEADER) {
        let Some(auth) = current.obshell.clone() else {
            return Err(Failure::unauthorized());
        };
        let verified = auth
            .verify(
                header.to_str().unwrap_or_default(),
                &caller.uri,
                caller.peer,
                std::time::SystemTime::now(),
            )
            .await
            .map_err(|error| {
                tracing::debug!(peer = %caller.peer_display(), err_code = error.err_code(), "obshell header refused");
                Failure::obshell_header(error)
            })?;
        (Principal::Obshell, Some(verified))
    } else {
        let web = state.web.get();
        let credentials = Credentials {
            basic: web.auth.as_ref(),
            bearer: settings.bearer_token.as_ref(),
        };
        // Nothing configured is open only when asked for explicitly (an obshell header
        // is the only way in when obshell_auth is all there is).
        if credentials.is_empty() && (!settings.insecure_no_auth || current.obshell.is_some()) {
            return Err(Failure::unauthorized());
        }
        let given = caller
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let client = caller.peer.map(crate::web::ClientKey::from);
        let who = credentials
            .check(given, client)
            .await
            .ok_or_else(Failure::unauthorized)?;
        (who, None)
    };
    if !settings.admits(&who) {
        return Err(Failure::forbidden(format!(
            "the {who} is in no passthrough.access entry: add it to one to use the session API"
        )));
    }
    Ok((who, verified))
}

/// The 403 of a tenant outside `who`'s grant. It does not tell whether the tenant
/// exists.
pub(super) fn not_granted(who: &Principal, tenant: &str) -> Failure {
    Failure::forbidden(format!(
        "the {who} is not given tenant `{}`: add the tenant to the tenants of one of its \
         passthrough.access entries",
        tenant.chars().take(128).collect::<String>()
    ))
}

/// The backend serving tenant `name`, from what the last collections found.
pub(super) fn resolve(
    current: &Applied,
    published: &Published,
    name: &str,
    shown: impl Fn(&str) -> bool,
) -> Result<Arc<dyn SessionApi>, Failure> {
    // Published targets in config order, with the tenants each answers for: those
    // its last collection found and those its configuration names.
    let with_tenants = || {
        published.targets.iter().filter_map(|entry| {
            let served = current.backends.get(&entry.status.name)?;
            let tenants = entry
                .status
                .tenants
                .keys()
                .chain(served.expected_tenants.iter());
            Some((served, tenants))
        })
    };
    with_tenants()
        .find_map(|(served, mut tenants)| tenants.any(|t| t == name).then_some(&served.api))
        .cloned()
        .ok_or_else(|| {
            let mut known: Vec<&str> = with_tenants()
                .flat_map(|(_, tenants)| tenants.map(String::as_str))
                .filter(|t| shown(t))
                .collect();
            known.sort_unstable();
            known.dedup();
            let shown = known.len().min(20);
            let more = if known.len() > shown {
                format!(" and {} more", known.len() - shown)
            } else {
                String::new()
            };
            if !published.ready {
                return Failure::unavailable(
                    "the exporter is starting: tenants are known once every target's first \
                     collection has finished; retry in a moment",
                );
            }
            Failure::not_found(
                "OB.Tenant.NotExist",
                format!(
                    "unknown tenant `{}`: known tenants are {}{more}",
                    name.chars().take(128).collect::<String>(),
                    if known.is_empty() {
                        "none yet (no collection has finished)".to_string()
                    } else {
                        known[..shown].join(", ")
                    }
                ),
            )
        })
}
