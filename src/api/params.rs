//! The list endpoint's query parameters, parsed strictly: a value that is not what
//! the contract accepts is a 400 naming the parameter and what it accepts, never a
//! silent default. Values are percent-decoded here and must be UTF-8; they reach SQL
//! only as bound parameters (see `backend`).

use super::failure::Failure;
use super::session::Field;
use std::net::IpAddr;

/// obshell's default page size. Any larger `size` up to `u64::MAX` is accepted too,
/// as obshell accepts it: its Python SDK sends `sys.maxsize` by default.
pub const DEFAULT_SIZE: u64 = 2_147_483_647;

/// What `GET /api/v1/tenant/:name/sessions` was asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ListParams {
    pub page: u64,
    pub size: u64,
    /// Substrings of USER, DB and HOST; `%` and `_` in them are literal.
    pub user: Option<String>,
    pub db: Option<String>,
    pub host: Option<String>,
    /// Not obshell's: a substring of COMMAND or STATE (`Sleep`, `idle in
    /// transaction`, `ACTIVE`), for the sessions page.
    pub state: Option<String>,
    /// Not obshell's: sessions whose TIME is at least this many seconds.
    pub min_time: Option<f64>,
    pub id: Option<u64>,
    pub observers: Option<Vec<Observer>>,
    pub active_only: bool,
    pub sort: Option<(Field, Direction)>,
    /// Not obshell's: the sessions as the session history recorded them by the last
    /// cycle at or before this time (Unix milliseconds), instead of live.
    pub at: Option<i64>,
}

impl Default for ListParams {
    fn default() -> Self {
        Self {
            page: 1,
            size: DEFAULT_SIZE,
            user: None,
            db: None,
            host: None,
            state: None,
            min_time: None,
            id: None,
            observers: None,
            active_only: false,
            sort: None,
            at: None,
        }
    }
}

/// One `observer_list` item: a server address, with the port when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observer {
    pub ip: IpAddr,
    pub port: Option<u16>,
}

impl Observer {
    /// True when one of `observers` is the single server at `host:port` (a target
    /// that is one server): by address, and by port when one is given (its SQL port,
    /// the only one it has).
    pub fn any_is(observers: &[Observer], host: &str, port: u16) -> bool {
        let host = host.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
        observers
            .iter()
            .any(|o| host == Some(o.ip.to_canonical()) && o.port.is_none_or(|p| p == port))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

impl Direction {
    pub fn sql(self) -> &'static str {
        match self {
            Direction::Asc => "ASC",
            Direction::Desc => "DESC",
        }
    }
}

const ACCEPTED: &str = "page, size, user, db, host (or client_ip), state, min_time, id, \
     observer_list (or svr_ip), active_only, sort, at";

/// The other name a parameter is sent under: obshell's SDK sends `client_ip` for
/// `host` and `svr_ip` for `observer_list`, which mean the same.
fn canonical(key: &'static str) -> &'static str {
    match key {
        "client_ip" => "host",
        "svr_ip" => "observer_list",
        key => key,
    }
}

/// The most events one page of the deadlock history holds, whatever `size` asks
/// (obshell's SDK asks for `sys.maxsize`): a page answers at most this many, and says
/// so in its `size`, so a client that pages on gets every event, and a request never
/// costs memory in proportion to what it asks for.
pub const MAX_PAGE_EVENTS: u64 = 100;

/// The query of obshell's deadlock history: `page` (from 1) and `size`, both
/// optional (obshell's defaults: the first page, every event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageParams {
    pub page: u64,
    pub size: u64,
}

impl PageParams {
    /// Parses a raw query string (`None`: no `?`); any other parameter is refused.
    pub fn parse(query: Option<&str>) -> Result<Self, Failure> {
        let mut params = PageParams {
            page: 1,
            size: u64::MAX,
        };
        let mut seen: Vec<String> = Vec::new();
        for (key, value) in pairs(query.unwrap_or(""))? {
            let key: &'static str = match key.as_str() {
                "page" => "page",
                "size" => "size",
                other => {
                    return Err(Failure::bad_parameter(
                        "query",
                        format!(
                            "unknown parameter `{}`: accepted are page and size",
                            printable(other)
                        ),
                    ))
                }
            };
            if seen.iter().any(|k| k == key) {
                return Err(Failure::bad_parameter(
                    key,
                    format!("`{key}` is given more than once: give it once"),
                ));
            }
            seen.push(key.to_string());
            let n = whole(key, &value, 1, u64::MAX)?;
            match key {
                "page" => params.page = n,
                _ => params.size = n,
            }
        }
        Ok(params)
    }

    /// What a page holds: `size`, at most [`MAX_PAGE_EVENTS`].
    pub fn size(&self) -> u64 {
        self.size.min(MAX_PAGE_EVENTS)
    }

    /// Events to skip; None when the page is beyond any result SQL can count.
    pub fn offset(&self) -> Option<u64> {
        (self.page - 1)
            .checked_mul(self.size())
            .filter(|&offset| offset <= i64::MAX as u64)
    }
}

impl ListParams {
    /// Parses a raw query string (`None`: no `?`).
    pub fn parse(query: Option<&str>) -> Result<Self, Failure> {
        let mut params = ListParams::default();
        let mut seen: Vec<&'static str> = Vec::new();
        for (key, value) in pairs(query.unwrap_or(""))? {
            let key: &'static str = match key.as_str() {
                "page" => "page",
                "size" => "size",
                "user" => "user",
                "db" => "db",
                "host" => "host",
                "client_ip" => "client_ip",
                "state" => "state",
                "min_time" => "min_time",
                "id" => "id",
                "observer_list" => "observer_list",
                "svr_ip" => "svr_ip",
                "active_only" => "active_only",
                "sort" => "sort",
                "at" => "at",
                other => {
                    return Err(Failure::bad_parameter(
                        "query",
                        format!(
                            "unknown parameter `{}`: accepted are {ACCEPTED}",
                            printable(other)
                        ),
                    ))
                }
            };
            if let Some(earlier) = seen.iter().find(|k| canonical(k) == canonical(key)) {
                let message = if *earlier == key {
                    format!("`{key}` is given more than once: give it once")
                } else {
                    format!("`{earlier}` and `{key}` are one parameter under two names: give one")
                };
                return Err(Failure::bad_parameter(key, message));
            }
            seen.push(key);
            match canonical(key) {
                "page" => params.page = whole(key, &value, 1, u64::MAX)?,
                "size" => params.size = whole(key, &value, 1, u64::MAX)?,
                "user" => params.user = Some(value),
                "db" => params.db = Some(value),
                "host" => params.host = Some(value),
                "state" => params.state = Some(value),
                "min_time" => params.min_time = Some(seconds(key, &value)?),
                "id" => params.id = Some(whole(key, &value, 0, u64::MAX)?),
                "observer_list" => params.observers = Some(observers(key, &value)?),
                "active_only" => params.active_only = boolean(key, &value)?,
                "at" => params.at = Some(moment(key, &value)?),
                _ => params.sort = Some(sort(&value)?),
            }
        }
        Ok(params)
    }

    /// Rows to skip: `(page - 1) * size`, refused when it does not fit SQL's range.
    pub fn offset(&self) -> Result<u64, Failure> {
        (self.page - 1)
            .checked_mul(self.size)
            .filter(|&offset| offset <= i64::MAX as u64)
            .ok_or_else(|| {
                Failure::bad_parameter(
                    "page",
                    format!(
                        "page {} of size {} is beyond any result: ask for an earlier page",
                        self.page, self.size
                    ),
                )
            })
    }
}

/// Splits and percent-decodes `a=1&b=2` (`+` is a space, as in forms).
fn pairs(query: &str) -> Result<Vec<(String, String)>, Failure> {
    query
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            let key = decode(key).map_err(|_| {
                Failure::bad_parameter(
                    "query",
                    "a parameter name is not valid UTF-8 once percent-decoded",
                )
            })?;
            let value = decode(value).map_err(|_| {
                Failure::bad_parameter(
                    "query",
                    format!(
                        "the value of `{}` is not valid UTF-8 once percent-decoded",
                        printable(&key)
                    ),
                )
            })?;
            Ok((key, value))
        })
        .collect()
}

fn decode(text: &str) -> Result<String, std::string::FromUtf8Error> {
    let plus = text.replace('+', " ");
    String::from_utf8(percent_encoding::percent_decode_str(&plus).collect())
}

/// A parameter name as it may be echoed in a message: bounded, without controls.
fn printable(text: &str) -> String {
    let mut out: String = text.chars().filter(|c| !c.is_control()).take(64).collect();
    if text.chars().count() > 64 {
        out.push('…');
    }
    out
}

fn whole(key: &'static str, value: &str, min: u64, max: u64) -> Result<u64, Failure> {
    value
        .parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            Failure::bad_parameter(
                key,
                format!(
                    "`{key}` must be a whole number from {min} to {max}, not `{}`",
                    printable(value)
                ),
            )
        })
}

/// A number of seconds, from 0 to a year's (a TIME past it is no filter a person
/// asks for; the bound keeps every server's comparison exact).
fn seconds(key: &'static str, value: &str) -> Result<f64, Failure> {
    value
        .parse::<f64>()
        .ok()
        .filter(|n| (0.0..=31_536_000.0).contains(n))
        .ok_or_else(|| {
            Failure::bad_parameter(
                key,
                format!(
                    "`{key}` must be a number of seconds from 0 to 31536000, not `{}`",
                    printable(value)
                ),
            )
        })
}

/// A moment: RFC 3339 (`2026-12-07T03:12:00Z`), or Unix milliseconds (what a
/// Grafana data link's `${__value.time}` gives), as Unix milliseconds.
pub fn moment(key: &'static str, value: &str) -> Result<i64, Failure> {
    let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    let parsed = match digits {
        true => value.parse::<i64>().ok(),
        false => crate::timefmt::parse_rfc3339_millis(value),
    };
    parsed
        .filter(|ms| (0..=LATEST_MS).contains(ms))
        .ok_or_else(|| {
            Failure::bad_parameter(
                key,
                format!(
                    "`{key}` must be an RFC 3339 time such as 2026-12-07T03:12:00Z, or Unix \
                 milliseconds, from 1970 to 9999, not `{}`",
                    printable(value)
                ),
            )
        })
}

/// The query of the history's timeline (`from`, `to`, `step`) and of a session's
/// story (`from`, `to`): times as [`moment`] reads them, the step a duration
/// (`15s`, `1m`) or seconds. Unset, `to` is `now_ms`, `from` an hour before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeParams {
    pub from_ms: i64,
    pub to_ms: i64,
    /// None: the caller's default.
    pub step_ms: Option<i64>,
}

pub use crate::history::read::MAX_STEPS;

/// The query of the pile-up: nothing (now), or `at` (a moment of the session
/// history, as [`moment`] reads it).
pub fn at_only(query: Option<&str>) -> Result<Option<i64>, Failure> {
    let mut at = None;
    for (key, value) in pairs(query.unwrap_or(""))? {
        if key != "at" {
            return Err(Failure::bad_parameter(
                "query",
                format!("unknown parameter `{}`: accepted is at", printable(&key)),
            ));
        }
        if at.replace(moment("at", &value)?).is_some() {
            return Err(Failure::bad_parameter(
                "at",
                "`at` is given more than once: give it once",
            ));
        }
    }
    Ok(at)
}

/// The latest moment accepted: the end of year 9999 (Unix milliseconds).
const LATEST_MS: i64 = 253_402_300_799_999;

impl RangeParams {
    /// Parses a raw query string; `step` only where `with_step`.
    pub fn parse(query: Option<&str>, now_ms: i64, with_step: bool) -> Result<Self, Failure> {
        let (mut from, mut to, mut step) = (None, None, None);
        for (key, value) in pairs(query.unwrap_or(""))? {
            let slot = match key.as_str() {
                "from" => &mut from,
                "to" => &mut to,
                "step" if with_step => &mut step,
                other => {
                    let accepted = if with_step {
                        "from, to, step"
                    } else {
                        "from, to"
                    };
                    return Err(Failure::bad_parameter(
                        "query",
                        format!(
                            "unknown parameter `{}`: accepted are {accepted}",
                            printable(other)
                        ),
                    ));
                }
            };
            if slot.is_some() {
                return Err(Failure::bad_parameter(
                    "query",
                    format!("`{key}` is given more than once: give it once"),
                ));
            }
            *slot = Some(value);
        }
        let to_ms = match to {
            Some(value) => moment("to", &value)?,
            None => now_ms,
        };
        let from_ms = match from {
            Some(value) => moment("from", &value)?,
            None => (to_ms - 3_600_000).max(0),
        };
        if from_ms >= to_ms {
            return Err(Failure::bad_parameter("from", "`from` must be before `to`"));
        }
        let step_ms = step
            .map(|value| {
                let ms = match value.bytes().all(|b| b.is_ascii_digit()) && !value.is_empty() {
                    true => value.parse::<i64>().ok().map(|s| s.saturating_mul(1000)),
                    false => crate::config::parse_duration(&value)
                        .ok()
                        .and_then(|d| i64::try_from(d.as_millis()).ok()),
                };
                ms.filter(|&ms| (1000..=LATEST_MS).contains(&ms)).ok_or_else(|| {
                    Failure::bad_parameter(
                        "step",
                        format!(
                            "`step` must be a duration of a second or more (15s, 1m) or seconds, not `{}`",
                            printable(&value)
                        ),
                    )
                })
            })
            .transpose()?;
        if let Some(step_ms) = step_ms {
            if (to_ms - from_ms) / step_ms > MAX_STEPS {
                return Err(Failure::bad_parameter(
                    "step",
                    format!(
                        "more than {MAX_STEPS} steps from `from` to `to`: ask for a longer step"
                    ),
                ));
            }
        }
        Ok(Self {
            from_ms,
            to_ms,
            step_ms,
        })
    }
}

/// Go's `strconv.ParseBool`, which obshell's binding uses.
fn boolean(key: &'static str, value: &str) -> Result<bool, Failure> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(Failure::bad_parameter(
            key,
            format!("`{key}` must be true or false, not `{}`", printable(value)),
        )),
    }
}

/// `observer_list` (or `svr_ip`, named by `key`): comma-separated IPs, each with an
/// optional port.
fn observers(key: &'static str, value: &str) -> Result<Vec<Observer>, Failure> {
    let bad = |item: &str| {
        Failure::bad_parameter(
            key,
            format!(
                "`{}` is not a server address: {key} is comma-separated IPs, each with an optional port (10.0.0.1,10.0.0.2:2882,[::1]:2882)",
                printable(item)
            ),
        )
    };
    value
        .split(',')
        .map(|item| {
            let item = item.trim();
            if let Ok(ip) = item.parse::<IpAddr>() {
                return Ok(Observer { ip, port: None });
            }
            let (host, port) = item.rsplit_once(':').ok_or_else(|| bad(item))?;
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            let ip = host.parse::<IpAddr>().map_err(|_| bad(item))?;
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad(item))?;
            // An IPv6 address with a port needs brackets, or the port is ambiguous.
            if ip.is_ipv6() && !item.starts_with('[') {
                return Err(bad(item));
            }
            Ok(Observer {
                ip,
                port: Some(port),
            })
        })
        .collect()
}

fn sort(value: &str) -> Result<(Field, Direction), Failure> {
    let (name, direction) = value.split_once(',').unwrap_or((value, "asc"));
    let field = Field::sortable(name.trim()).ok_or_else(|| {
        let names: Vec<&str> = Field::ALL
            .iter()
            .filter(|f| Field::sortable(f.name()).is_some())
            .map(|f| f.name())
            .collect();
        Failure::bad_parameter(
            "sort",
            format!(
                "cannot sort by `{}`: sort is `field,asc` or `field,desc` with a field among {}",
                printable(name),
                names.join(", ")
            ),
        )
    })?;
    let direction = match direction.trim().to_ascii_lowercase().as_str() {
        "asc" => Direction::Asc,
        "desc" => Direction::Desc,
        other => {
            return Err(Failure::bad_parameter(
                "sort",
                format!("sort order `{}` is neither asc nor desc", printable(other)),
            ))
        }
    };
    Ok((field, direction))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<ListParams, Failure> {
        ListParams::parse(Some(query))
    }

    fn field_of(query: &str) -> &'static str {
        parse(query).unwrap_err().field.unwrap()
    }

    #[test]
    fn the_sdk_s_spellings_and_sizes_are_accepted() {
        // What obshell's Python SDK sends by default: size=sys.maxsize.
        let p = parse("page=1&size=9223372036854775807&client_ip=10.0.0&svr_ip=10.0.0.1,10.0.0.2")
            .unwrap();
        assert_eq!(p.size, 9_223_372_036_854_775_807);
        assert_eq!(p.host.as_deref(), Some("10.0.0"));
        assert_eq!(p.observers.as_ref().map(Vec::len), Some(2));
        assert_eq!(parse("size=18446744073709551615").unwrap().size, u64::MAX);
        for (query, field) in [
            ("host=a&client_ip=b", "client_ip"),
            ("svr_ip=10.0.0.1&observer_list=10.0.0.2", "observer_list"),
            ("svr_ip=db.example", "svr_ip"),
        ] {
            assert_eq!(field_of(query), field, "{query}");
        }
    }

    #[test]
    fn defaults_match_obshell() {
        let p = ListParams::parse(None).unwrap();
        assert_eq!((p.page, p.size, p.active_only), (1, DEFAULT_SIZE, false));
        assert_eq!(p.offset().unwrap(), 0);
    }

    #[test]
    fn every_parameter_is_parsed() {
        let p = parse("page=2&size=10&user=ro%25t&db=a+b&host=10.0&id=7&observer_list=10.0.0.1,10.0.0.2:2882,[::1]:2882&active_only=true&sort=time,desc").unwrap();
        assert_eq!((p.page, p.size, p.offset().unwrap()), (2, 10, 10));
        assert_eq!(p.user.as_deref(), Some("ro%t"));
        assert_eq!(p.db.as_deref(), Some("a b"));
        assert_eq!(p.host.as_deref(), Some("10.0"));
        assert_eq!(p.id, Some(7));
        let observers = p.observers.unwrap();
        assert_eq!(observers.len(), 3);
        assert_eq!(observers[1].port, Some(2882));
        assert_eq!(observers[2].ip, "::1".parse::<IpAddr>().unwrap());
        assert!(p.active_only);
        assert_eq!(p.sort, Some((Field::Time, Direction::Desc)));
        assert_eq!(
            parse("sort=user").unwrap().sort,
            Some((Field::User, Direction::Asc))
        );
        let p = parse("state=idle+in&min_time=2.5").unwrap();
        assert_eq!(
            (p.state.as_deref(), p.min_time),
            (Some("idle in"), Some(2.5))
        );
    }

    #[test]
    fn bad_values_name_their_parameter() {
        assert_eq!(field_of("page=0"), "page");
        assert_eq!(field_of("page=-1"), "page");
        assert_eq!(field_of("page=abc"), "page");
        assert_eq!(field_of("size=0"), "size");
        assert_eq!(field_of("size=18446744073709551616"), "size");
        assert_eq!(field_of("id=1.5"), "id");
        assert_eq!(field_of("active_only=yes"), "active_only");
        for bad in ["-1", "NaN", "inf", "31536001", "1e400", "ten"] {
            assert_eq!(field_of(&format!("min_time={bad}")), "min_time", "{bad}");
        }
        assert_eq!(field_of("sort=password,desc"), "sort");
        assert_eq!(field_of("sort=time,sideways"), "sort");
        assert_eq!(field_of("sort=proxy_ip"), "sort");
        assert_eq!(
            field_of("observer_list=10.0.0.1,,10.0.0.2"),
            "observer_list"
        );
        assert_eq!(field_of("observer_list=db.example"), "observer_list");
        // `::1:2882` is an IPv6 address; a port after IPv6 needs brackets.
        assert!(
            parse("observer_list=::1:2882").unwrap().observers.unwrap()[0]
                .port
                .is_none()
        );
        assert_eq!(field_of("observer_list=fe80::1:99999"), "observer_list");
        assert_eq!(field_of("observer_list=10.0.0.1:0"), "observer_list");
        assert_eq!(field_of("page=1&page=2"), "page");
        assert_eq!(field_of("pgae=1"), "query");
        assert_eq!(field_of("user=%FF%FE"), "query");
        let message = parse("sort=nope").unwrap_err().message;
        assert!(
            message.contains("time") && message.contains("svr_ip"),
            "{message}"
        );
        let beyond = parse(&format!("page={}&size={DEFAULT_SIZE}", u64::MAX)).unwrap();
        assert_eq!(beyond.offset().unwrap_err().field, Some("page"));
    }

    #[test]
    fn strange_text_is_kept_verbatim_for_binding() {
        let p = parse("user=%27%3B%20DROP%20TABLE%20t%3B--&db=%5C%00_%25").unwrap();
        assert_eq!(p.user.as_deref(), Some("'; DROP TABLE t;--"));
        assert_eq!(p.db.as_deref(), Some("\\\0_%"));
        let long = "x".repeat(10_240);
        assert_eq!(
            parse(&format!("host={long}")).unwrap().host.unwrap().len(),
            10_240
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Any query string: parsed or refused with a parameter named, never a panic.
        #[test]
        fn any_query_string_is_parsed_or_refused(query in "\\PC{0,80}|([a-z_]{1,12}=[%0-9A-Fa-f,:.\\[\\]a-z]{0,20}&?){0,6}") {
            match ListParams::parse(Some(&query)) {
                Ok(params) => {
                    proptest::prop_assert!(params.page >= 1 && params.size >= 1);
                }
                Err(failure) => {
                    proptest::prop_assert_eq!(failure.status, axum::http::StatusCode::BAD_REQUEST);
                    proptest::prop_assert!(failure.field.is_some());
                }
            }
        }
    }

    /// The history's ranges: RFC 3339 or Unix milliseconds from 1970 to 9999; `from`
    /// before `to`; a default hour that does not reach before 1970; at most
    /// MAX_STEPS steps; unknown or repeated parameters refused.
    #[test]
    fn history_ranges_are_bounded() {
        let parse = |q: &str| RangeParams::parse(Some(q), 5_000_000, true);
        let range = parse("from=2026-12-07T03:00:00Z&to=1796655600000&step=1m").unwrap();
        assert_eq!(range.from_ms, 1_796_655_600_000 - 12 * 3_600_000);
        assert_eq!(range.step_ms, Some(60_000));
        assert_eq!(parse("").unwrap().from_ms, 1_400_000);
        assert_eq!(RangeParams::parse(None, 1000, false).unwrap().from_ms, 0);
        for bad in [
            "to=9223372036854775807",
            "from=-5",
            "from=2&to=1",
            "step=0",
            "step=9223372036854775",
            "from=0&to=100000000&step=1s",
            "at=1",
            "from=1&from=2",
            "step=1m",
        ] {
            let with_step = !bad.starts_with("step=1m");
            assert!(
                RangeParams::parse(Some(bad), 5_000_000, with_step).is_err(),
                "{bad}"
            );
        }
        assert!(moment("at", "2026-02-30T00:00:00Z").is_err());
        assert_eq!(moment("at", "0"), Ok(0));
    }
}
