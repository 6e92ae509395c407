//! `signature`, `delta` and `patch`: the delta engine (`sync::delta`) with rdiff's meaning.
//!
//! - `signature BASE SIG [--block-size N]`: the signature of BASE.
//! - `delta SIG NEW DELTA`: the delta that turns the file SIG describes into NEW.
//! - `patch BASE DELTA OUT`: BASE + DELTA, verified against the whole-file hash, into OUT.
//!
//! `-` means stdin for an input and stdout for an output (patch's BASE must be a seekable file).
//! File outputs are written to a temporary file in the same directory and renamed into place
//! only on success, so a failed run never leaves a partial or unverified OUT.
//!
//! Exit codes are rdiff's (librsync's `rs_result`): 0 done, 100 I/O error (missing, unreadable
//! or unwritable file), 103 input ended early, 104 bad magic (not a signature / delta of this
//! format), 106 corrupt input (including a patched file whose hash does not match: wrong base),
//! 108 bad parameter. Usage errors exit with clap's 2.
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use sync::delta::{self, DeltaError, Signature, SignatureOptions};

/// rdiff's exit code for an I/O error.
const EXIT_IO: u8 = 100;
/// rdiff's exit code for input that ended early.
const EXIT_INPUT_ENDED: u8 = 103;
/// rdiff's exit code for a bad magic number.
const EXIT_BAD_MAGIC: u8 = 104;
/// rdiff's exit code for corrupt input.
const EXIT_CORRUPT: u8 = 106;
/// rdiff's exit code for a bad parameter.
const EXIT_PARAM: u8 = 108;

/// Arguments of `signature`.
#[derive(clap::Args, Debug)]
pub struct SignatureArgs {
    /// The base (old) file, or `-` for stdin.
    pub base: PathBuf,
    /// Where to write the signature, or `-` for stdout.
    pub sig: PathBuf,
    /// Block size in bytes (default: about the square root of BASE's size; 4096 for stdin).
    #[arg(long, short = 'b')]
    pub block_size: Option<u32>,
}

/// Arguments of `delta`.
#[derive(clap::Args, Debug)]
pub struct DeltaArgs {
    /// The signature of the base, or `-` for stdin.
    pub sig: PathBuf,
    /// The new file, or `-` for stdin.
    pub new: PathBuf,
    /// Where to write the delta, or `-` for stdout.
    pub delta: PathBuf,
}

/// Arguments of `patch`.
#[derive(clap::Args, Debug)]
pub struct PatchArgs {
    /// The base (old) file; must be seekable, so not `-`.
    pub base: PathBuf,
    /// The delta, or `-` for stdin.
    pub delta: PathBuf,
    /// Where to write the new file, or `-` for stdout.
    pub out: PathBuf,
}

/// A failure: the exit code and the one line to print.
struct Failure {
    code: u8,
    message: String,
}

fn is_dash(p: &Path) -> bool {
    p.as_os_str() == "-"
}

fn io_failure(what: &str, path: &Path, e: io::Error) -> Failure {
    Failure {
        code: EXIT_IO,
        message: format!("{what} '{}': {e}", path.display()),
    }
}

fn delta_failure(what: &str, path: &Path, e: DeltaError) -> Failure {
    let code = match &e {
        DeltaError::Io { .. } => EXIT_IO,
        DeltaError::Truncated { .. } => EXIT_INPUT_ENDED,
        DeltaError::BadMagic { .. } | DeltaError::UnsupportedVersion { .. } => EXIT_BAD_MAGIC,
        DeltaError::InvalidOption(_) => EXIT_PARAM,
        _ => EXIT_CORRUPT,
    };
    let shown = if is_dash(path) {
        "stdin".to_string()
    } else {
        format!("'{}'", path.display())
    };
    Failure {
        code,
        message: format!("{what} {shown}: {e}"),
    }
}

fn open_input(what: &str, path: &Path) -> Result<Box<dyn Read>, Failure> {
    if is_dash(path) {
        Ok(Box::new(io::stdin().lock()))
    } else {
        File::open(path)
            .map(|f| Box::new(f) as Box<dyn Read>)
            .map_err(|e| io_failure(&format!("cannot open {what}"), path, e))
    }
}

/// An output that becomes visible only on [`Output::commit`]: a temporary file in the target's
/// directory renamed over the target, or stdout. Dropped uncommitted, the temporary is removed.
struct Output {
    target: PathBuf,
    temp: Option<PathBuf>,
    writer: BufWriter<Box<dyn Write>>,
}

impl Output {
    fn create(what: &str, path: &Path) -> Result<Output, Failure> {
        if is_dash(path) {
            return Ok(Output {
                target: path.to_path_buf(),
                temp: None,
                writer: BufWriter::with_capacity(256 << 10, Box::new(io::stdout().lock())),
            });
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        let temp_name = format!(".{name}.tmp-{}", std::process::id());
        let temp = dir.map_or_else(|| PathBuf::from(&temp_name), |d| d.join(&temp_name));
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| io_failure(&format!("cannot create {what}"), path, e))?;
        Ok(Output {
            target: path.to_path_buf(),
            temp: Some(temp),
            writer: BufWriter::with_capacity(256 << 10, Box::new(file)),
        })
    }

    fn commit(mut self, what: &str) -> Result<(), Failure> {
        self.writer
            .flush()
            .map_err(|e| io_failure(&format!("cannot write {what}"), &self.target, e))?;
        if let Some(temp) = self.temp.take() {
            let done = File::open(&temp)
                .and_then(|f| f.sync_all())
                .and_then(|()| fs::rename(&temp, &self.target));
            if let Err(e) = done {
                let _ = fs::remove_file(&temp);
                return Err(io_failure(&format!("cannot write {what}"), &self.target, e));
            }
        }
        Ok(())
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            let _ = fs::remove_file(temp);
        }
    }
}

fn finish(command: &str, result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("redundancy-cli {command}: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// Runs `signature`.
pub fn run_signature(args: SignatureArgs) -> ExitCode {
    finish("signature", signature(&args))
}

fn signature(args: &SignatureArgs) -> Result<(), Failure> {
    let input = open_input("base", &args.base)?;
    let block_size = match args.block_size {
        Some(n) => Some(n),
        None if is_dash(&args.base) => None,
        None => fs::metadata(&args.base)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| delta::block_size_for(m.len())),
    };
    let options = SignatureOptions {
        block_size,
        ..SignatureOptions::default()
    };
    let sig = Signature::calculate_from(input, options)
        .map_err(|e| delta_failure("base", &args.base, e))?;
    let mut out = Output::create("signature", &args.sig)?;
    sig.write_to(&mut out.writer)
        .map_err(|e| delta_failure("signature", &args.sig, e))?;
    out.commit("signature")
}

/// Runs `delta`.
pub fn run_delta(args: DeltaArgs) -> ExitCode {
    finish("delta", make_delta(&args))
}

fn make_delta(args: &DeltaArgs) -> Result<(), Failure> {
    if is_dash(&args.sig) && is_dash(&args.new) {
        return Err(Failure {
            code: EXIT_PARAM,
            message: "SIG and NEW cannot both be stdin".into(),
        });
    }
    let mut sig_in = BufReader::with_capacity(64 << 10, open_input("signature", &args.sig)?);
    let sig =
        Signature::read_from(&mut sig_in).map_err(|e| delta_failure("signature", &args.sig, e))?;
    let mut extra = [0u8; 1];
    let trailing = sig_in
        .read(&mut extra)
        .map_err(|e| io_failure("cannot read signature", &args.sig, e))?;
    if trailing != 0 {
        return Err(delta_failure(
            "signature",
            &args.sig,
            DeltaError::TrailingData {
                what: "signature",
                offset: sig.serialized_len() as u64,
            },
        ));
    }
    let new = open_input("new file", &args.new)?;
    let mut out = Output::create("delta", &args.delta)?;
    delta::diff(&sig.index(), new, &mut out.writer)
        .map_err(|e| delta_failure("new file", &args.new, e))?;
    out.commit("delta")
}

/// Runs `patch`.
pub fn run_patch(args: PatchArgs) -> ExitCode {
    finish("patch", patch(&args))
}

fn patch(args: &PatchArgs) -> Result<(), Failure> {
    if is_dash(&args.base) {
        return Err(Failure {
            code: EXIT_PARAM,
            message: "BASE must be a seekable file, not stdin".into(),
        });
    }
    let base = File::open(&args.base).map_err(|e| io_failure("cannot open base", &args.base, e))?;
    let delta_in = open_input("delta", &args.delta)?;
    let mut out = Output::create("output", &args.out)?;
    // The output is renamed into place only after `apply` has verified the whole-file hash.
    delta::apply(
        BufReader::with_capacity(256 << 10, base),
        delta_in,
        &mut out.writer,
    )
    .map_err(|e| delta_failure("delta", &args.delta, e))?;
    out.commit("output")
}
