//! The published state: the latest result of every target, and the exposition bytes
//! prepared from it.
//!
//! Target loops send their new [`TargetStatus`] to one publisher task. The publisher
//! encodes a target's samples only when that target changed (split by metric family),
//! and assembles the whole exposition by concatenating, family by family, the header
//! and every target's chunk: an interval in which N targets report costs N small
//! encodings, not N full ones. It publishes at most every [`PUBLISH_EVERY`], so
//! targets finishing together cost one assembly and one gzip.
//!
//! What Prometheus asks for (OpenMetrics, gzip) is prepared eagerly. The classic text
//! format and each target's `/probe` bodies are prepared at most once per publish, by
//! the first request that needs them: a large exposition then costs one copy in
//! memory instead of six, and nobody pays for a variant no one scrapes. A scrape
//! never queries a database.

use crate::exposition::{openmetrics_to_classic, Format};
use crate::history::Health;
use crate::metrics::{self, EncodedFamilies, ReloadStatus};
use crate::stats::own::Family;
use crate::status::TargetStatus;
use bytes::Bytes;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, watch};

/// Publishing is rate-limited to this: values are at most this much later than their
/// collection, and a burst of results costs one assembly.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// One encoded exposition: gzip-compressed at once (what Prometheus asks for), and
/// otherwise served as the pieces it is made of, slices of each target's encoded
/// families, which live as long anyway. At 100,000 sessions the plain text is 8 to 15
/// MB: a copy of it for every publish, beside the previous one still being served,
/// was a quarter of the peak RSS of `bench/` scenario 3, and a plain copy made for one
/// curl lived until the next publish (about 8 MB of issue 39's 3d).
#[derive(Debug)]
pub struct Body {
    pieces: Vec<Bytes>,
    pub gzip: Bytes,
}

impl Body {
    fn new(pieces: Vec<Bytes>) -> Self {
        let size: usize = pieces.iter().map(Bytes::len).sum();
        // Fast compression: this runs once per publish, and most of the gain of gzip
        // on repetitive exposition text comes at the lowest level.
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(size / 8 + 64),
            flate2::Compression::fast(),
        );
        let gzip = pieces
            .iter()
            .try_for_each(|piece| encoder.write_all(piece))
            .and_then(|()| encoder.finish())
            .unwrap_or_default();
        Self {
            pieces,
            gzip: Bytes::from(gzip),
        }
    }

    /// The text uncompressed, as its pieces (each a reference, not a copy), for a
    /// response body that writes them one after the other.
    pub fn pieces(&self) -> Vec<Bytes> {
        self.pieces.clone()
    }

    /// The pieces as text: each is whole lines of UTF-8, as encoded.
    fn texts(&self) -> Vec<std::borrow::Cow<'_, str>> {
        self.pieces
            .iter()
            .map(|piece| String::from_utf8_lossy(piece))
            .collect()
    }
}

/// An exposition in both formats: OpenMetrics prepared now, the classic format when
/// first asked for.
#[derive(Debug)]
pub struct Bodies {
    openmetrics: Body,
    classic: OnceLock<Body>,
}

impl Bodies {
    fn new(openmetrics: Vec<Bytes>) -> Self {
        Self {
            openmetrics: Body::new(openmetrics),
            classic: OnceLock::new(),
        }
    }

    pub fn get(&self, format: Format) -> &Body {
        match format {
            Format::OpenMetrics => &self.openmetrics,
            Format::Classic => self.classic.get_or_init(|| {
                // Converted piece by piece: the OpenMetrics text is never copied whole.
                let texts = self.openmetrics.texts();
                let texts: Vec<&str> = texts.iter().map(|text| text.as_ref()).collect();
                Body::new(vec![Bytes::from(
                    openmetrics_to_classic(&texts).into_bytes(),
                )])
            }),
        }
    }
}

/// One target as published: its status, and its samples split by family.
#[derive(Debug)]
pub struct TargetEntry {
    pub status: Arc<TargetStatus>,
    families: EncodedFamilies,
    headers: Arc<EncodedFamilies>,
    probe: OnceLock<Bodies>,
}

impl TargetEntry {
    fn new(
        status: Arc<TargetStatus>,
        headers: &Arc<EncodedFamilies>,
        own: &'static [&'static Family],
    ) -> Result<Self, std::fmt::Error> {
        let families = metrics::encode_families(std::slice::from_ref(&status), own)?;
        Ok(Self {
            status,
            families,
            headers: headers.clone(),
            probe: OnceLock::new(),
        })
    }

    /// This target's own exposition, for `/probe`.
    pub fn probe(&self) -> &Bodies {
        self.probe
            .get_or_init(|| Bodies::new(assemble(&self.headers, &[&self.families], "")))
    }
}

/// Everything a scrape or a page needs, prepared once per publish.
#[derive(Debug)]
pub struct Published {
    /// Targets in config order.
    pub targets: Vec<Arc<TargetEntry>>,
    pub all: Bodies,
    /// Set once every target of the first configuration has been tried, and never
    /// cleared: a reload that adds a target does not take a running exporter out of
    /// service.
    pub ready: bool,
    pub reload: ReloadStatus,
}

impl Published {
    pub fn target(&self, name: &str) -> Option<&TargetEntry> {
        self.targets
            .iter()
            .find(|t| t.status.name == name)
            .map(|t| t.as_ref())
    }
}

/// The exposition's pieces in order, family by family: each header and every
/// target's samples (slices of their text, not copies), then the process-wide
/// families, then `# EOF`.
fn assemble(headers: &EncodedFamilies, targets: &[&EncodedFamilies], process: &str) -> Vec<Bytes> {
    let mut pieces = Vec::with_capacity(headers.len() * (1 + targets.len()) + 2);
    for i in 0..headers.len() {
        pieces.push(headers.header(i));
        pieces.extend(targets.iter().map(|families| families.samples(i)));
    }
    pieces.retain(|piece| !piece.is_empty());
    pieces.push(Bytes::copy_from_slice(process.as_bytes()));
    pieces.push(Bytes::from_static(b"# EOF\n"));
    pieces
}

/// A message to the publisher.
#[derive(Debug)]
pub enum Update {
    /// A target finished a cycle.
    Status(Arc<TargetStatus>),
    /// The configured targets after a (re)load, in order, each as its run starts
    /// (pending, with its generation). Targets kept by name keep their state until
    /// their run reports; new ones start pending; the others and their series go.
    Targets(Vec<Arc<TargetStatus>>),
    /// A configuration load finished.
    Reload { successful: bool, at: SystemTime },
}

/// Channel ends that connect target loops, the publisher and the HTTP server.
pub struct Channels {
    pub updates: mpsc::Sender<Update>,
    pub published: watch::Receiver<Arc<Published>>,
}

/// Starts the publisher and returns where to send updates and where to read the
/// published state. The publisher ends when every update sender is dropped.
///
/// It runs on its own thread, not on the runtime: encoding and compressing a large
/// exposition takes tens of milliseconds of CPU, which on a runtime worker would stall
/// the scrapes queued behind it (measured as the p99 of `bench/` scenario 3).
/// `own` are the metric families of the kinds' own statistics (`source::OWN_FAMILIES`).
pub fn start(
    own: &'static [&'static Family],
    history: Option<Arc<Health>>,
) -> std::io::Result<Channels> {
    let mut publisher = Publisher::new(own);
    publisher.history = history;
    let first = publisher.publish();
    let (published_tx, published_rx) = watch::channel(Arc::new(first));
    let (updates_tx, updates_rx) = mpsc::channel(256);
    std::thread::Builder::new()
        .name("publisher".into())
        .spawn(move || publisher.run(updates_rx, published_tx))?;
    Ok(Channels {
        updates: updates_tx,
        published: published_rx,
    })
}

struct Publisher {
    headers: Arc<EncodedFamilies>,
    own: &'static [&'static Family],
    order: Vec<String>,
    /// The run generation of every configured target: only its results are taken.
    generations: HashMap<String, u64>,
    entries: HashMap<String, Arc<TargetEntry>>,
    ever_ready: bool,
    reload: ReloadStatus,
    process: String,
    /// The session history's recorder, whose state every publish reads.
    history: Option<Arc<Health>>,
}

impl Publisher {
    fn new(own: &'static [&'static Family]) -> Self {
        let reload = ReloadStatus {
            last_successful: true,
            last_success: SystemTime::now(),
        };
        Self {
            headers: Arc::new(
                metrics::encode_families(&[], own).expect("encoding into a String cannot fail"),
            ),
            own,
            order: Vec::new(),
            generations: HashMap::new(),
            entries: HashMap::new(),
            ever_ready: false,
            reload,
            process: metrics::encode_process(reload, None)
                .expect("encoding into a String cannot fail"),
            history: None,
        }
    }

    fn run(
        mut self,
        mut updates: mpsc::Receiver<Update>,
        published: watch::Sender<Arc<Published>>,
    ) {
        let mut last_publish = Instant::now();
        while let Some(first) = updates.blocking_recv() {
            self.apply(first);
            // Wait out the rate limit, then take in whatever arrived meanwhile.
            std::thread::sleep(
                (last_publish + PUBLISH_EVERY).saturating_duration_since(Instant::now()),
            );
            while let Ok(update) = updates.try_recv() {
                self.apply(update);
            }
            published.send_replace(Arc::new(self.publish()));
            last_publish = Instant::now();
        }
    }

    fn apply(&mut self, update: Update) {
        let result = match update {
            Update::Status(status) => self.apply_status(status),
            Update::Targets(targets) => self.apply_targets(targets),
            Update::Reload { successful, at } => {
                self.reload.last_successful = successful;
                if successful {
                    self.reload.last_success = at;
                }
                self.encode_process()
            }
        };
        if let Err(err) = result {
            tracing::error!("encoding the exposition failed: {err}");
        }
    }

    fn apply_status(&mut self, status: Arc<TargetStatus>) -> Result<(), std::fmt::Error> {
        // From a target removed by a reload, or from a run a reload replaced: drop it.
        if self.generations.get(&status.name) != Some(&status.generation) {
            return Ok(());
        }
        let entry = TargetEntry::new(status, &self.headers, self.own)?;
        self.entries
            .insert(entry.status.name.clone(), Arc::new(entry));
        Ok(())
    }

    fn apply_targets(&mut self, targets: Vec<Arc<TargetStatus>>) -> Result<(), std::fmt::Error> {
        let mut entries = HashMap::with_capacity(targets.len());
        self.order.clear();
        self.generations.clear();
        for pending in targets {
            let name = pending.name.clone();
            self.generations.insert(name.clone(), pending.generation);
            let entry = match self.entries.remove(&name) {
                // A kept or restarted target shows its last state until its run reports.
                Some(entry) => entry,
                None => Arc::new(TargetEntry::new(pending, &self.headers, self.own)?),
            };
            self.order.push(name.clone());
            entries.insert(name, entry);
        }
        self.entries = entries;
        Ok(())
    }

    /// The process-wide families, with the recorder's state as it is now.
    fn encode_process(&mut self) -> Result<(), std::fmt::Error> {
        let history = self.history.as_ref().map(|health| health.read());
        self.process = metrics::encode_process(self.reload, history)?;
        Ok(())
    }

    fn publish(&mut self) -> Published {
        if self.history.is_some() {
            if let Err(err) = self.encode_process() {
                tracing::error!("encoding the exposition failed: {err}");
            }
        }
        let targets: Vec<Arc<TargetEntry>> = self
            .order
            .iter()
            .filter_map(|name| self.entries.get(name).cloned())
            .collect();
        let chunks: Vec<&EncodedFamilies> = targets.iter().map(|t| &t.families).collect();
        let all = Bodies::new(assemble(&self.headers, &chunks, &self.process));
        self.ever_ready |= !targets.is_empty() && targets.iter().all(|t| t.status.tried);
        Published {
            all,
            ready: self.ever_ready,
            reload: self.reload,
            targets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{testing, Target};
    use crate::error::{Reason, SourceError};
    use crate::stats::SessionRows;
    use std::time::{Duration, SystemTime};

    fn target(name: &str) -> Target {
        testing::mysql(name)
    }

    /// The status of run `generation` of `name` before its first cycle.
    fn pending(name: &str, generation: u64) -> TargetStatus {
        TargetStatus::new(&target(name), generation, &Reason::DATABASE)
    }

    /// The targets of a (re)load, in order.
    fn plan(targets: &[(&str, u64)]) -> Vec<Arc<TargetStatus>> {
        targets
            .iter()
            .map(|(name, generation)| Arc::new(pending(name, *generation)))
            .collect()
    }

    fn text(body: &Body) -> String {
        body.texts().concat()
    }

    #[test]
    fn assembly_equals_a_direct_encoding_of_all_targets() {
        let mut publisher = Publisher::new(&crate::source::OWN_FAMILIES);
        publisher
            .apply_targets(plan(&[("a", 1), ("b", 1)]))
            .unwrap();
        let mut statuses = Vec::new();
        for name in ["a", "b"] {
            let mut status = pending(name, 1);
            status.record_success(
                SessionRows {
                    tenants: vec![name.into()],
                    groups: vec![],
                    top: vec![],
                },
                Duration::from_millis(3),
                SystemTime::UNIX_EPOCH,
            );
            let status = Arc::new(status);
            publisher.apply_status(status.clone()).unwrap();
            statuses.push(status);
        }
        let published = publisher.publish();
        let direct = metrics::encode_families(&statuses, &crate::source::OWN_FAMILIES).unwrap();
        let direct = std::str::from_utf8(direct.text()).unwrap();
        let body = published.all.get(Format::OpenMetrics);
        assert!(body.pieces.len() > 2, "assembled from slices, not one copy");
        let all = text(body);
        assert_eq!(all, format!("{direct}{}# EOF\n", publisher.process));
        // The gzip body, made from the pieces, is the same text.
        let mut unzipped = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(&body.gzip[..]),
            &mut unzipped,
        )
        .unwrap();
        assert_eq!(unzipped, all);
        // The classic text, converted piece by piece, says the same.
        let fresh = publisher.publish();
        let classic = text(fresh.all.get(Format::Classic));
        assert_eq!(classic, crate::exposition::openmetrics_to_classic(&[&all]));
        assert!(classic.contains(r#"dbsession_up{target="a",tenant="a"} 1"#));
        assert!(!classic.contains("# EOF"));
        assert!(published.ready);

        // A target's probe body holds its own series only.
        let probe = text(
            published
                .target("b")
                .unwrap()
                .probe()
                .get(Format::OpenMetrics),
        );
        assert!(probe.contains(r#"dbsession_up{target="b",tenant="b"} 1"#));
        assert!(!probe.contains(r#"target="a""#));
        assert!(!probe.contains("dbsession_exporter_build_info"));
        assert!(probe.ends_with("# EOF\n"));
    }

    #[test]
    fn reloads_keep_state_drop_removed_and_ignore_stale_runs() {
        let mut publisher = Publisher::new(&crate::source::OWN_FAMILIES);
        publisher
            .apply_targets(plan(&[("keep", 1), ("gone", 1)]))
            .unwrap();
        for name in ["keep", "gone"] {
            let mut status = pending(name, 1);
            status.record_failure(SourceError::new(Reason::Auth, "x"), Duration::ZERO);
            publisher.apply_status(Arc::new(status)).unwrap();
        }
        assert!(publisher.publish().ready);

        // "keep" restarts as run 2, "gone" goes, "new" comes.
        publisher
            .apply_targets(plan(&[("new", 3), ("keep", 2)]))
            .unwrap();
        let published = publisher.publish();
        let names: Vec<&str> = published
            .targets
            .iter()
            .map(|t| t.status.name.as_str())
            .collect();
        assert_eq!(names, ["new", "keep"]);
        assert!(
            published.target("keep").unwrap().status.tried,
            "kept state until the new run reports"
        );
        assert!(published.ready, "readiness is not lost by a reload");
        let all = text(published.all.get(Format::Classic));
        assert!(!all.contains(r#"target="gone""#));

        // A late result of run 1 of "keep" does not overwrite run 2's.
        let mut newer = pending("keep", 2);
        newer.record_success(SessionRows::default(), Duration::ZERO, SystemTime::now());
        publisher.apply_status(Arc::new(newer)).unwrap();
        let mut stale = pending("keep", 1);
        stale.record_failure(SourceError::new(Reason::Timeout, "late"), Duration::ZERO);
        publisher.apply_status(Arc::new(stale)).unwrap();
        assert!(publisher.publish().target("keep").unwrap().status.is_up());

        // A result for a removed target is dropped.
        let mut ghost = pending("gone", 1);
        ghost.record_failure(SourceError::new(Reason::Timeout, "late"), Duration::ZERO);
        publisher.apply_status(Arc::new(ghost)).unwrap();
        assert!(publisher.publish().target("gone").is_none());
    }

    #[test]
    fn reload_outcomes_are_exported() {
        let mut publisher = Publisher::new(&crate::source::OWN_FAMILIES);
        publisher.apply(Update::Reload {
            successful: false,
            at: SystemTime::now(),
        });
        let all = text(publisher.publish().all.get(Format::Classic));
        assert!(
            all.contains("dbsession_config_last_reload_successful 0\n"),
            "{all}"
        );
    }
}
