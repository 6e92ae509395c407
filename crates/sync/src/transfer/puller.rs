//! The pulling side: one round brings a [`GenStore`] to the server's generation.
//!
//! The round: connect, authenticate ([`super::auth`]), say which generation we hold. "Unchanged"
//! ends it (a few hundred bytes). Otherwise the manifest difference arrives, is applied to our
//! stored manifest, validated ([`Manifest::validate`]: safe paths, parents are directories,
//! symlinks stay inside, sizes bounded) and must hash to the announced generation id. Then the
//! new generation is staged (see [`crate::tree::store`]):
//!
//! * the generation before the current one is reused when there is one, so unchanged files are
//!   already in place; other unchanged files are hard-linked from the current generation; files
//!   whose content we already hold under another path or
//!   with other metadata (renames, `chmod`, `touch`) are copied locally, nothing on the wire;
//! * other files are fetched in batches: for a file that grew we offer our old version as a
//!   prefix (appended voice files then cost only the appended bytes); for other changed files we
//!   send a [`Signature`] and receive a delta; data left in `.partial/` by an interrupted round is
//!   offered as a prefix, so a large file is not started from scratch;
//! * every received file is checked against the manifest's BLAKE3 hash and size (a peer cannot
//!   make us write more than the manifest said); for a file that grew, our verified old version
//!   is cloned in the kernel as its prefix and not hashed again: the server's hash of the whole
//!   file (over a prefix it checked against our old version's hash, and the tail it sent) must
//!   equal the manifest's;
//! * then the generation is committed atomically and the server told.
//!
//! Any error leaves the current generation untouched; the staging directory is removed and the
//! file being received stays in `.partial/` for the next round.
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::auth::{client_handshake, variant_name, Identity, Key};
use super::compress::FEATURE_ZSTD;
use super::frame::{FrameReader, FrameWriter};
use super::install::Installer;
use super::msg::{Encoding, FetchItem, Msg};
use super::prefix::PrefixCopier;
use super::tls::Conn;
use super::{PullTransport, TransferError};
use crate::delta::{apply, Signature, SignatureOptions};
use crate::tree::manifest::{Entry, EntryKind, GenId, Limits, Manifest, ManifestDelta};
use crate::tree::scan::hash_reader;
use crate::tree::store::{clone_prefix, start_writeback, verified, GenStore, Staging};
use crate::tree::watch::intact_on_disk;

/// Most items in one fetch.
const BATCH_ITEMS: usize = 1024;
/// Signature bytes per fetch before it is sent.
const BATCH_SIG_BYTES: usize = 2 << 20;
/// Largest signature attached to one item.
const MAX_SIG_BYTES: usize = 1 << 20;
/// Old versions up to this size get a signature even when the file grew.
const SIG_ON_GROWTH_LIMIT: u64 = 1 << 20;

/// Settings of a puller.
#[derive(Clone, Debug)]
pub struct PullConfig {
    /// The server, `host:port`.
    pub server: String,
    /// The sync set to pull.
    pub set: String,
    /// Pre-shared key.
    pub key: Key,
    /// Who we are.
    pub identity: Identity,
    /// Bounds on what the server may announce.
    pub limits: Limits,
    /// Connect, read and write timeout.
    pub io_timeout: Duration,
    /// Ask for deltas of changed files (else they come whole).
    pub use_delta: bool,
    /// TLS and compression (both off by default).
    pub transport: PullTransport,
}

/// What one round did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// The generation now current.
    pub generation: Option<GenId>,
    /// Whether the round switched to a new generation.
    pub changed: bool,
    /// Files received over the wire.
    pub files_fetched: u64,
    /// Files copied locally (renames, metadata changes).
    pub files_copied: u64,
    /// Files hard-linked from the previous generation.
    pub files_linked: u64,
    /// Files already in place in the reused generation directory (nothing done).
    pub files_kept: u64,
    /// Fetched or copied-ahead files written into the inode of a file the round removed
    /// instead of a new one (see `crate::tree::recycle`).
    pub files_recycled: u64,
    /// Entries present before and gone now.
    pub entries_deleted: u64,
    /// Entries new or changed in the manifest.
    pub entries_changed: u64,
    /// Bytes we sent (frames, including handshake).
    pub bytes_sent: u64,
    /// Bytes we received.
    pub bytes_received: u64,
    /// Wall time of the round.
    pub duration: Duration,
    /// Where the wall time went.
    pub phases: RoundPhases,
}

/// Wall time of each phase of a round (logged at debug level, shown by benchmarks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoundPhases {
    /// Connect and mutual authentication.
    pub handshake: Duration,
    /// From asking to holding the validated new manifest (includes the server's scan).
    pub manifest: Duration,
    /// Preparing the staging tree: directories, links, local copies, removals, symlinks.
    pub stage: Duration,
    /// Fetching file data: signatures, transfer, writing and verifying.
    pub fetch: Duration,
    /// Directory metadata and the stored manifest.
    pub finish: Duration,
    /// Making the staged generation durable (fsync).
    pub sync: Duration,
    /// Renaming it into place and switching `current`.
    pub switch: Duration,
    /// Removing generations no longer kept (on the round's own thread).
    pub gc: Duration,
}

impl std::fmt::Display for RoundPhases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        write!(
            f,
            "handshake {:.1} ms, manifest {:.1} ms, stage {:.1} ms, fetch {:.1} ms, \
             finish {:.1} ms, sync {:.1} ms, switch {:.1} ms, gc {:.1} ms",
            ms(self.handshake),
            ms(self.manifest),
            ms(self.stage),
            ms(self.fetch),
            ms(self.finish),
            ms(self.sync),
            ms(self.switch),
            ms(self.gc)
        )
    }
}

impl std::fmt::Display for RoundReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let gen = self
            .generation
            .map_or_else(|| "none".to_string(), |g| g.to_string());
        if self.changed {
            write!(
                f,
                "generation {gen}: {} changed, {} deleted, {} fetched, {} copied, {} linked, \
                 {} kept; {} B sent, {} B received in {:.3} s",
                self.entries_changed,
                self.entries_deleted,
                self.files_fetched,
                self.files_copied,
                self.files_linked,
                self.files_kept,
                self.bytes_sent,
                self.bytes_received,
                self.duration.as_secs_f64()
            )
        } else {
            write!(
                f,
                "generation {gen}: unchanged; {} B sent, {} B received in {:.3} s",
                self.bytes_sent,
                self.bytes_received,
                self.duration.as_secs_f64()
            )
        }
    }
}

/// Progress of a round, called after each received file: (bytes received on this connection so
/// far, bytes of file data to fetch in this round; the first can exceed the second by the frames'
/// overhead and the manifest).
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// Connects to the configured server (trying each resolved address).
pub fn connect(cfg: &PullConfig) -> Result<TcpStream, TransferError> {
    let addrs = cfg
        .server
        .to_socket_addrs()
        .map_err(|e| TransferError::io(format!("resolving {}", cfg.server), e))?;
    let mut last = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, cfg.io_timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(TransferError::io(
        format!("connecting to {}", cfg.server),
        last.unwrap_or_else(|| std::io::ErrorKind::NotFound.into()),
    ))
}

/// One pull round into `store` (see the module documentation).
pub fn pull_once(store: &GenStore, cfg: &PullConfig) -> Result<RoundReport, TransferError> {
    pull_once_with_progress(store, cfg, &mut |_, _| {})
}

/// [`pull_once`] reporting progress of file data received.
pub fn pull_once_with_progress(
    store: &GenStore,
    cfg: &PullConfig,
    progress: Progress<'_>,
) -> Result<RoundReport, TransferError> {
    let start = Instant::now();
    let stream = connect(cfg)?;
    let t = Some(cfg.io_timeout);
    stream
        .set_read_timeout(t)
        .and_then(|()| stream.set_write_timeout(t))
        .and_then(|()| stream.set_nodelay(true))
        .map_err(|e| TransferError::io("configuring socket", e))?;
    let conn = super::tls::connect(cfg.transport.tls.as_ref(), stream, &cfg.server)?;
    let rs = conn
        .try_clone()
        .map_err(|e| TransferError::io("cloning socket", e))?;
    let mut r = FrameReader::new(rs);
    let mut w = FrameWriter::new(conn);
    let mut report = RoundReport::default();
    let res = round(store, cfg, &mut r, &mut w, &mut report, progress);
    report.bytes_sent = w.bytes();
    report.bytes_received = r.bytes();
    report.duration = start.elapsed();
    log::debug!("round phases: {}", report.phases);
    res.map(|()| report)
}

fn round(
    store: &GenStore,
    cfg: &PullConfig,
    r: &mut FrameReader<Conn>,
    w: &mut FrameWriter<Conn>,
    report: &mut RoundReport,
    progress: Progress<'_>,
) -> Result<(), TransferError> {
    let t = Instant::now();
    let mut me = cfg.identity.clone();
    me.features = if cfg.transport.compression {
        FEATURE_ZSTD
    } else {
        0
    };
    let server = client_handshake(r, w, &cfg.key, &me)?;
    if me.features & server.features & FEATURE_ZSTD != 0 {
        r.accept_compressed()?;
    }
    report.phases.handshake = t.elapsed();
    let t_manifest = Instant::now();
    // Only the id is needed to ask; the manifest is loaded when a difference arrives, which
    // keeps a no-change poll to a readlink.
    let have = match store.current_id() {
        Ok(h) => h.filter(|h| store.has_complete(h)),
        Err(e) => {
            log::warn!("ignoring the current generation ({e}); pulling everything");
            None
        }
    };
    // Our current generation may have been changed in place (an application writes into
    // `current` while this node is master). Claiming it then would make the server answer
    // "unchanged", or send a difference whose "unchanged" entries we no longer hold; so it is
    // claimed only when every entry passes the quick check, and otherwise we ask for the whole
    // manifest (what still matches is used as a local source below). An inotify watch armed on
    // the generation makes that check free while nothing happened in it (no-change polls).
    let claim = have.filter(|h| {
        let intact = store.check_generation(h);
        if !intact {
            log::info!("generation {h} was changed in place; asking for the whole manifest");
        }
        intact
    });
    w.write(&Msg::Pull {
        set: cfg.set.clone(),
        have: claim,
    })?;
    w.flush()?;
    let (gen, base, root, n_up, n_del) = match r.read()? {
        Msg::Unchanged { gen } => {
            if Some(gen) != claim {
                return Err(TransferError::Protocol(
                    "Unchanged for a generation we do not hold".into(),
                ));
            }
            report.generation = Some(gen);
            w.write(&Msg::Done { gen })?;
            w.flush()?;
            return Ok(());
        }
        Msg::ManifestBegin {
            gen,
            base,
            root,
            upserts,
            deletions,
        } => (gen, base, root, upserts, deletions),
        Msg::Error { message } => return Err(TransferError::Remote(message)),
        other => {
            return Err(TransferError::Protocol(format!(
                "expected Unchanged or ManifestBegin, got {}",
                variant_name(&other)
            )))
        }
    };
    let max = cfg.limits.max_entries as u64;
    if n_up > max || n_del > max {
        return Err(TransferError::Protocol(format!(
            "manifest difference of {n_up} + {n_del} entries exceeds the limit {max}"
        )));
    }
    let current = match have.map(|h| store.load_manifest(&h).map(|m| (h, m))) {
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => {
            // Without its manifest this generation cannot serve as a basis; forget the manifest
            // so that the next round asks for everything (the tree itself stays readable).
            if let Some(h) = have {
                store.discard_manifest(&h);
            }
            return Err(TransferError::Protocol(format!(
                "our current generation is unreadable ({e}); it will be pulled whole next round"
            )));
        }
        None => None,
    };
    let old = match (&base, &current) {
        (None, _) => None,
        (Some(b), Some((h, m))) if b == h && claim == Some(*h) => Some(m),
        (Some(_), _) => {
            return Err(TransferError::Protocol(
                "manifest difference against a generation we do not hold".into(),
            ))
        }
    };
    let mut delta = ManifestDelta {
        root,
        ..Default::default()
    };
    while (delta.upserts.len() as u64) < n_up || (delta.deletions.len() as u64) < n_del {
        match r.read()? {
            Msg::ManifestPart { upserts, deletions } => {
                delta.upserts.extend(upserts);
                delta.deletions.extend(deletions);
                if delta.upserts.len() as u64 > n_up || delta.deletions.len() as u64 > n_del {
                    return Err(TransferError::Protocol(
                        "more manifest entries than announced".into(),
                    ));
                }
            }
            Msg::Error { message } => return Err(TransferError::Remote(message)),
            other => {
                return Err(TransferError::Protocol(format!(
                    "expected ManifestPart, got {}",
                    variant_name(&other)
                )))
            }
        }
    }
    report.entries_changed = delta.upserts.len() as u64;
    let new = match old {
        Some(o) => o.apply_delta(delta)?,
        None => {
            if !delta.deletions.is_empty() {
                return Err(TransferError::Protocol(
                    "deletions in a whole manifest".into(),
                ));
            }
            Manifest {
                root: delta.root,
                entries: delta.upserts,
            }
        }
    };
    new.validate(&cfg.limits)?;
    if new.id() != gen {
        return Err(TransferError::Integrity {
            path: "(manifest)".into(),
            reason: "does not hash to the announced generation id".into(),
        });
    }
    let empty = Manifest::default();
    let old_m = current.as_ref().map_or(&empty, |c| &c.1);
    let mut in_new = new.cursor();
    report.entries_deleted = old_m
        .entries
        .iter()
        .filter(|e| in_new.get(&e.path).is_none())
        .count() as u64;
    if old.is_none() {
        report.entries_changed = new.delta_from(old_m).upserts.len() as u64;
    }
    report.generation = Some(gen);
    report.changed = true;
    if store.has_complete(&gen) && intact(store, &gen) {
        report.phases.manifest = t_manifest.elapsed();
        let t = Instant::now();
        store.switch_to(&gen)?;
        report.phases.switch = t.elapsed();
    } else {
        report.phases.manifest = t_manifest.elapsed();
        let claimed = claim.is_some();
        stage_and_commit(
            store, cfg, r, w, gen, new, old_m, have, claimed, report, progress,
        )?;
    }
    w.write(&Msg::Done { gen })?;
    w.flush()?;
    if let Err(e) = store.clear_partials() {
        log::warn!("{e}");
    }
    Ok(())
}

/// Whether the complete local generation `id` is still exactly as its manifest says (nothing
/// changed, missing or added in place), so that switching back to it is correct.
fn intact(store: &GenStore, id: &GenId) -> bool {
    store
        .load_manifest(id)
        .is_ok_and(|m| intact_on_disk(&store.gen_dir(id), &m))
}

/// Where a fetched file's known prefix comes from.
enum Basis {
    None,
    Partial(Box<blake3::Hasher>),
    Old(PathBuf),
}

struct Pending<'m> {
    entry: &'m Entry,
    item: FetchItem,
    basis: Basis,
    old_path: Option<PathBuf>,
    /// The copy of the old version into `.partial/` started ahead ([`PrefixCopier`]).
    prefix_copy: Option<usize>,
}

#[allow(clippy::too_many_arguments)]
fn stage_and_commit(
    store: &GenStore,
    cfg: &PullConfig,
    r: &mut FrameReader<Conn>,
    w: &mut FrameWriter<Conn>,
    gen: GenId,
    new: Manifest,
    old: &Manifest,
    have: Option<GenId>,
    claimed: bool,
    report: &mut RoundReport,
    progress: Progress<'_>,
) -> Result<(), TransferError> {
    let t = Instant::now();
    let old_dir = have.map(|h| store.gen_dir(&h));
    // Reuse the generation before the current one when there is one: only what differs
    // between it and the new manifest is touched (see crate::tree::store, "Reusing").
    // The current generation was intact when claimed; checked again (free while its watch saw
    // nothing), since what is linked from it must still be. Not claimed: found changed.
    let current_intact = match have {
        Some(h) if claimed => store.check_generation(&h),
        _ => false,
    };
    // Else the mirror of the current generation built after the last commit, when there was
    // no earlier generation (crate::tree::store, GenStore::take_mirror); else from scratch.
    let staging = match store.spare(have.as_ref(), &gen) {
        Some((spare, spare_m)) => store.stage_reusing(gen, new, spare, spare_m, current_intact)?,
        None => match have.as_ref().and_then(|h| store.take_mirror(h)) {
            Some((mirror, clean)) => {
                let unchanged = clean && current_intact;
                store.stage_from_mirror(gen, new, mirror, old.clone(), unchanged)?
            }
            None => store.stage(gen, new)?,
        },
    };
    let (kept, _removed) = staging.prepare()?;
    report.files_kept = kept;
    // Only what is still on disk as its manifest says may be linked, copied or offered as a
    // prefix (see the Pull above); other old files may still serve as a delta basis.
    let stored_old = old;
    let verified_old = match old_dir.as_ref() {
        Some(_) if current_intact => std::borrow::Cow::Borrowed(old),
        Some(d) => std::borrow::Cow::Owned(verified(d, old)),
        None => std::borrow::Cow::Owned(Manifest::default()),
    };
    let old: &Manifest = &verified_old;
    let by_hash = old.files_by_hash();
    let mut fetch = Vec::new();
    let mut expected = 0u64;
    // New, base and old manifests are all sorted by path: merge joins instead of look-ups.
    let (mut base_c, mut old_c) = (staging.base().cursor(), old.cursor());
    // The new manifest now lives in the staging (moved, not copied).
    let new = staging.manifest();
    for e in &new.entries {
        // In place already (Staging::in_place, by cursor).
        if matches!(e.kind, EntryKind::Dir) || base_c.get(&e.path) == Some(e) {
            continue;
        }
        match &e.kind {
            EntryKind::Dir => {}
            EntryKind::Symlink { .. } => staging.symlink(e)?,
            EntryKind::File { size, hash } => {
                let od = old_dir.as_ref();
                // A source removed since the check is fetched instead.
                if let (Some(o), Some(od)) = (old_c.get(&e.path), od) {
                    if o == e && staging.link_from(e, &od.join(&e.path))? {
                        report.files_linked += 1;
                        continue;
                    }
                }
                if let (Some(o), Some(od)) = (by_hash.get(hash), od) {
                    let src = od.join(&o.path);
                    if o.meta == e.meta {
                        if staging.link_from(e, &src)? {
                            report.files_linked += 1;
                            continue;
                        }
                    } else if staging.copy_from(e, &src)? {
                        report.files_copied += 1;
                        continue;
                    }
                }
                expected += size;
                fetch.push(e);
            }
        }
    }
    report.phases.stage = t.elapsed();
    let t = Instant::now();
    // Verified files are put in place by a helper thread while the next one is received
    // (see super::install); all of them are in place before the commit.
    std::thread::scope(|scope| -> Result<(), TransferError> {
        let mut installer = Installer::start(scope, &staging);
        let mut batch: Vec<Pending> = Vec::new();
        let mut sig_bytes = 0usize;
        let mut copier = PrefixCopier::new(store.options().fsync);
        for e in fetch {
            let mut p = plan_fetch(store, cfg, e, old, stored_old, old_dir.as_ref())?;
            // The server resumes after our old version when its own first bytes hash the
            // same (an append): copy that version into place now, while the fetch is under
            // way. Not for an old version small enough to go with a signature: the server
            // may as well answer with a delta, and then the copy was wasted and is truncated
            // again (a hundred of them queued ahead of the voice files' copies held those up
            // by 14 ms); when it does resume, the few KiB are copied then.
            if let (Basis::Old(src), Some((len, _)), true) =
                (&p.basis, p.item.prefix, p.item.signature.is_empty())
            {
                let dst = store.partial_path(&e.path);
                let into = staging.recycled_file(&dst, len).map(|(f, _)| f);
                p.prefix_copy = Some(copier.submit(src.clone(), len, dst, into));
            }
            sig_bytes += p.item.signature.len();
            batch.push(p);
            if batch.len() >= BATCH_ITEMS || sig_bytes >= BATCH_SIG_BYTES {
                let b = std::mem::take(&mut batch);
                let rx = (&mut *r, &mut copier, &mut installer, &staging);
                run_batch(store, rx, w, b, report, (expected, &mut *progress))?;
                sig_bytes = 0;
            }
        }
        if !batch.is_empty() {
            let rx = (&mut *r, &mut copier, &mut installer, &staging);
            run_batch(store, rx, w, batch, report, (expected, &mut *progress))?;
        }
        installer.finish()?;
        Ok(())
    })?;
    report.files_recycled = staging.files_recycled();
    report.phases.fetch = t.elapsed();
    let times = staging.commit()?;
    report.phases.finish = times.finish;
    report.phases.sync = times.sync;
    report.phases.switch = times.switch;
    report.phases.gc = times.gc;
    Ok(())
}

fn plan_fetch<'m>(
    store: &GenStore,
    cfg: &PullConfig,
    e: &'m Entry,
    old: &Manifest,
    stored_old: &Manifest,
    old_dir: Option<&PathBuf>,
) -> Result<Pending<'m>, TransferError> {
    let size = e.file().map_or(0, |f| f.0);
    let mut item = FetchItem {
        path: e.path.clone(),
        prefix: None,
        signature: Vec::new(),
    };
    let mut basis = Basis::None;
    let mut old_file = old.get(&e.path).and_then(|o| o.file());
    let mut old_path = match (old_file, old_dir) {
        (Some(_), Some(d)) => Some(d.join(&e.path)),
        _ => None,
    };
    // An old file changed in place: its real bytes are still a good delta basis (the result is
    // verified against the manifest's hash), but never a prefix (its stored hash is stale).
    let mut prefix_ok = true;
    if old_file.is_none() && stored_old.get(&e.path).is_some_and(|o| o.file().is_some()) {
        if let Some(d) = old_dir {
            let p = d.join(&e.path);
            if let Ok(md) = std::fs::symlink_metadata(&p) {
                if md.is_file() {
                    old_file = Some((md.len(), [0u8; 32]));
                    old_path = Some(p);
                    prefix_ok = false;
                }
            }
        }
    }
    let partial = store.partial_path(&e.path);
    if let Ok(md) = std::fs::metadata(&partial) {
        if md.len() > 0 && md.len() <= size {
            let mut h = blake3::Hasher::new();
            if let Ok(f) = File::open(&partial) {
                let mut hr = HashWriter { hasher: &mut h };
                if std::io::copy(&mut f.take(md.len()), &mut hr).is_ok() {
                    item.prefix = Some((md.len(), *h.finalize().as_bytes()));
                    basis = Basis::Partial(Box::new(h));
                }
            }
        }
    }
    if let (Some((osize, ohash)), Some(op)) = (old_file, &old_path) {
        if prefix_ok && item.prefix.is_none() && osize > 0 && osize < size {
            item.prefix = Some((osize, ohash));
            basis = Basis::Old(op.clone());
        }
        let want_sig = osize > 0 && (osize >= size || osize <= SIG_ON_GROWTH_LIMIT);
        if cfg.use_delta && want_sig {
            let f = File::open(op)
                .map_err(|e| TransferError::io(format!("open {}", op.display()), e))?;
            let sig = Signature::calculate_from(
                std::io::BufReader::with_capacity(256 << 10, f),
                SignatureOptions {
                    block_size: Some(crate::delta::block_size_for(osize)),
                    ..SignatureOptions::default()
                },
            )?
            .serialize();
            if sig.len() <= MAX_SIG_BYTES {
                item.signature = sig;
            }
        }
    }
    Ok(Pending {
        entry: e,
        item,
        basis,
        old_path,
        prefix_copy: None,
    })
}

struct HashWriter<'a> {
    hasher: &'a mut blake3::Hasher,
}

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hasher.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What receiving a file uses beside the store: the connection, the prefix copier, the
/// installer and the staging (for recycled inodes).
type Helpers<'a, 's, 'm> = (
    &'a mut FrameReader<Conn>,
    &'a mut PrefixCopier,
    &'a mut Installer<'s, 'm>,
    &'s Staging<'s>,
);

fn run_batch<'m>(
    store: &GenStore,
    (r, copier, installer, staging): Helpers<'_, '_, 'm>,
    w: &mut FrameWriter<Conn>,
    batch: Vec<Pending<'m>>,
    report: &mut RoundReport,
    (expected, progress): (u64, Progress<'_>),
) -> Result<(), TransferError> {
    let items: Vec<FetchItem> = batch.iter().map(|p| p.item.clone()).collect();
    w.write(&Msg::Fetch { items })?;
    w.flush()?;
    for (i, p) in batch.into_iter().enumerate() {
        let path = p.entry.path.clone();
        let helpers = (&mut *r, &mut *copier, &mut *installer, staging);
        if let Err(e) = receive_file(store, helpers, i as u32, p) {
            // A full disk: the partial data cannot become a basis worth its space, and keeping
            // it would make the next round fail too. Free it; the old generation is untouched.
            if is_storage_full(&e) {
                let _ = std::fs::remove_file(store.partial_path(&path));
            }
            return Err(e);
        }
        report.files_fetched += 1;
        progress(r.bytes(), expected);
    }
    match r.read()? {
        Msg::BatchEnd => Ok(()),
        Msg::Error { message } => Err(TransferError::Remote(message)),
        other => Err(TransferError::Protocol(format!(
            "expected BatchEnd, got {}",
            variant_name(&other)
        ))),
    }
}

/// Writes through to a file and a hasher, refusing to go past `limit` bytes.
struct Sink<'a> {
    out: BufWriter<&'a File>,
    hasher: blake3::Hasher,
    written: u64,
    limit: u64,
    /// `written` when writeback was last started; `None`: not started early (the store
    /// does not flush, see StoreOptions::fsync).
    written_back: Option<u64>,
    /// The file's length when the sink was made: past `written` only for a recycled inode
    /// (crate::tree::recycle), whose old bytes are overwritten. A file left incomplete is cut
    /// back to what was written when the sink is dropped, so that a partial file is only ever
    /// a valid prefix (the next round's basis).
    stale_end: u64,
}

impl Drop for Sink<'_> {
    fn drop(&mut self) {
        if self.written < self.stale_end {
            let _ = self.out.flush();
            let _ = self.out.get_ref().set_len(self.written);
        }
    }
}

/// Bytes received into one file between two starts of its writeback: a large file's data goes
/// to disk while the rest arrives, not all at once when it is installed (or at the final flush).
const WRITEBACK_EVERY: u64 = 2 << 20;

impl<'a> Sink<'a> {
    fn new(
        store: &GenStore,
        file: &'a File,
        hasher: blake3::Hasher,
        written: u64,
        limit: u64,
    ) -> Self {
        Sink {
            out: BufWriter::with_capacity(256 << 10, file),
            hasher,
            written,
            limit,
            written_back: store.options().fsync.then_some(written),
            stale_end: file.metadata().map_or(0, |md| md.len()),
        }
    }
}

impl Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.written + buf.len() as u64 > self.limit {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "more data than the manifest's size",
            ));
        }
        self.out.write_all(buf)?;
        self.hasher.update(buf);
        self.written += buf.len() as u64;
        if let Some(back) = &mut self.written_back {
            if self.written - *back >= WRITEBACK_EVERY {
                start_writeback(self.out.get_ref());
                *back = self.written;
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Reads `Data` frames as a byte stream until `FileEnd`.
struct DataReader<'a> {
    r: &'a mut FrameReader<Conn>,
    buf: Vec<u8>,
    pos: usize,
    end: Option<[u8; 32]>,
    /// `HashedData` frames are taken too: every byte of this file is hashed here and checked
    /// against the manifest (see super::frame, "Hashed data"). Not when the file's hash is the
    /// server's word (a resumed file with a trusted prefix): its bytes must be tagged.
    hashed_here: bool,
}

impl<'a> DataReader<'a> {
    fn next_frame(&mut self) -> Result<bool, TransferError> {
        if self.end.is_some() {
            return Ok(false);
        }
        match self.r.read()? {
            Msg::Data { bytes } => self.take(bytes),
            Msg::HashedData { bytes } if self.hashed_here => self.take(bytes),
            Msg::FileEnd { hash } => {
                self.end = Some(hash);
                Ok(false)
            }
            Msg::Error { message } => Err(TransferError::Remote(message)),
            other => Err(TransferError::Protocol(format!(
                "expected Data or FileEnd, got {}",
                variant_name(&other)
            ))),
        }
    }

    /// Reads from `r`; `hashed_here`: see the field.
    fn new(r: &'a mut FrameReader<Conn>, hashed_here: bool) -> Self {
        DataReader {
            r,
            buf: Vec::new(),
            pos: 0,
            end: None,
            hashed_here,
        }
    }

    /// Makes `bytes` the current frame's and recycles the previous buffer.
    fn take(&mut self, bytes: Vec<u8>) -> Result<bool, TransferError> {
        let used = std::mem::replace(&mut self.buf, bytes);
        self.r.recycle(used);
        self.pos = 0;
        Ok(true)
    }

    /// Reads up to `FileEnd`; data left over is a protocol error.
    fn finish(&mut self) -> Result<[u8; 32], TransferError> {
        loop {
            if self.pos < self.buf.len() {
                return Err(TransferError::Protocol(
                    "data after the end of a delta".into(),
                ));
            }
            if !self.next_frame()? {
                break;
            }
        }
        self.end
            .ok_or(TransferError::Protocol("missing FileEnd".into()))
    }
}

impl Read for DataReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.buf.len() {
            if !self.next_frame().map_err(std::io::Error::other)? {
                return Ok(0);
            }
        }
        let src = self.buf.get(self.pos..).unwrap_or_default();
        let n = src.len().min(out.len());
        out.get_mut(..n)
            .unwrap_or_default()
            .copy_from_slice(src.get(..n).unwrap_or_default());
        self.pos += n;
        Ok(n)
    }
}

fn receive_file<'m>(
    store: &GenStore,
    (r, copier, installer, staging): Helpers<'_, '_, 'm>,
    index: u32,
    p: Pending<'m>,
) -> Result<(), TransferError> {
    let path = &p.entry.path;
    // Whatever the server answers, the helper must be done with this partial file first.
    let copied = p.prefix_copy.map(|t| copier.wait(t));
    let Some((size, want)) = p.entry.file() else {
        return Err(TransferError::Protocol(format!("{path} is not a file")));
    };
    let encoding = match r.read()? {
        Msg::FileBegin { index: i, encoding } if i == index => encoding,
        Msg::FileGone { index: i, reason } if i == index => {
            return Err(TransferError::SourceChanged(format!("{path} ({reason})")))
        }
        Msg::Error { message } => return Err(TransferError::Remote(message)),
        other => {
            return Err(TransferError::Protocol(format!(
                "expected FileBegin {index}, got {}",
                variant_name(&other)
            )))
        }
    };
    let partial = store.partial_path(path);
    let io =
        |op: &str, e: std::io::Error| TransferError::io(format!("{op} {}", partial.display()), e);
    let integrity = |reason: String| TransferError::Integrity {
        path: path.clone(),
        reason,
    };
    let (file, ours, server_hash) = match encoding {
        Encoding::Literal { offset } => {
            if offset != 0 && Some(offset) != p.item.prefix.map(|x| x.0) {
                return Err(TransferError::Protocol(format!(
                    "{path}: server resumes at {offset}, we offered another prefix"
                )));
            }
            // An old version offered as prefix is our verified file of the current generation
            // (its whole-content hash is in our manifest, and it passed the quick check); the
            // server resumed only because its own first bytes hash to that same value. Those
            // bytes are cloned in the kernel (a reflink where the filesystem has one) instead of
            // being read, hashed and written again; the whole file's hash is then the server's
            // (computed over its identical prefix and the tail it sent, the tail in `Data`
            // frames tagged whole), which must equal the manifest's.
            let mut trusted_prefix = false;
            let (file, hasher) = match (&p.basis, offset) {
                (Basis::Partial(h), o) if o > 0 => {
                    let mut f = OpenOptions::new()
                        .write(true)
                        .open(&partial)
                        .map_err(|e| io("open", e))?;
                    f.set_len(o).map_err(|e| io("truncate", e))?;
                    f.seek(SeekFrom::Start(o)).map_err(|e| io("seek", e))?;
                    (f, (**h).clone())
                }
                (Basis::Old(src), o) if o > 0 => {
                    let ahead = match copied {
                        Some(Ok(())) => open_copied(&partial, o),
                        Some(Err(e)) => {
                            log::debug!("copying ahead into {}: {e}", partial.display());
                            None
                        }
                        None => None,
                    };
                    let f = match ahead {
                        Some(f) => f,
                        None => {
                            let f = File::create(&partial).map_err(|e| io("create", e))?;
                            clone_prefix(src, o, &f).map_err(|e| io("copy old version to", e))?;
                            f
                        }
                    };
                    trusted_prefix = true;
                    (f, blake3::Hasher::new())
                }
                (_, 0) => (
                    create_partial(staging, &partial, size).map_err(|e| io("create", e))?,
                    blake3::Hasher::new(),
                ),
                _ => {
                    return Err(TransferError::Protocol(format!(
                        "{path}: resume offset without a basis"
                    )))
                }
            };
            let mut sink = Sink::new(store, &file, hasher, offset, size);
            let mut data = DataReader::new(r, !trusted_prefix);
            while data.next_frame()? {
                let chunk = std::mem::take(&mut data.buf);
                let written = sink.write_all(&chunk);
                data.r.recycle(chunk);
                written.map_err(|e| {
                    if e.kind() == std::io::ErrorKind::InvalidData {
                        integrity(format!("more than the manifest's {size} bytes"))
                    } else {
                        io("write", e)
                    }
                })?;
            }
            let server_hash = data.finish()?;
            sink.flush().map_err(|e| io("write", e))?;
            if sink.written != size {
                return Err(check_source(server_hash, want, path).unwrap_or_else(|| {
                    integrity(format!("{} bytes, manifest says {size}", sink.written))
                }));
            }
            let ours = if trusted_prefix {
                // See above: the prefix is ours and verified; the server's hash covers it all.
                server_hash
            } else {
                *sink.hasher.finalize().as_bytes()
            };
            drop(sink);
            (file, ours, server_hash)
        }
        Encoding::Delta => {
            let Some(old) = &p.old_path else {
                return Err(TransferError::Protocol(format!(
                    "{path}: delta without an old version"
                )));
            };
            let base = File::open(old)
                .map_err(|e| TransferError::io(format!("open {}", old.display()), e))?;
            let file = create_partial(staging, &partial, size).map_err(|e| io("create", e))?;
            let mut sink = Sink::new(store, &file, blake3::Hasher::new(), 0, size);
            let mut data = DataReader::new(r, true);
            let applied = apply(base, &mut data, &mut sink);
            if let Err(e) = applied {
                // The server's own hash tells a changed source from corrupt data.
                return Err(TransferError::Delta(e));
            }
            let server_hash = data.finish()?;
            sink.flush().map_err(|e| io("write", e))?;
            if sink.written != size {
                return Err(check_source(server_hash, want, path).unwrap_or_else(|| {
                    integrity(format!("{} bytes, manifest says {size}", sink.written))
                }));
            }
            let ours = *sink.hasher.finalize().as_bytes();
            drop(sink);
            (file, ours, server_hash)
        }
    };
    if let Some(e) = check_source(server_hash, want, path) {
        return Err(e);
    }
    if ours != want {
        return Err(integrity(
            "content does not match the manifest's hash".into(),
        ));
    }
    installer.install(p.entry, file, partial)?;
    Ok(())
}

/// A new partial file for `size` bytes at `partial`: a recycled inode when the staging has one
/// (see crate::tree::recycle; its old bytes are overwritten, see Sink), else created empty.
fn create_partial(
    staging: &Staging<'_>,
    partial: &std::path::Path,
    size: u64,
) -> std::io::Result<File> {
    match staging.recycled_file(partial, size) {
        Some((f, _)) => Ok(f),
        None => File::create(partial),
    }
}

/// The partial file the prefix copier filled with exactly `len` bytes, open for appending at
/// `len`; `None` if it is not that (the caller then copies again).
fn open_copied(partial: &std::path::Path, len: u64) -> Option<File> {
    let mut f = OpenOptions::new().write(true).open(partial).ok()?;
    if f.metadata().ok()?.len() != len {
        return None;
    }
    f.seek(SeekFrom::Start(len)).ok()?;
    Some(f)
}

/// Whether an error is ENOSPC / EDQUOT somewhere in its chain.
pub fn is_storage_full(e: &TransferError) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ) {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

/// The server read something other than what its manifest announced: the file changed there.
fn check_source(server: [u8; 32], want: [u8; 32], path: &str) -> Option<TransferError> {
    (server != want).then(|| TransferError::SourceChanged(path.to_string()))
}

/// BLAKE3 of a whole file (used by tests and tools to compare trees).
pub fn file_hash(path: &std::path::Path) -> std::io::Result<[u8; 32]> {
    hash_reader(File::open(path)?)
}
