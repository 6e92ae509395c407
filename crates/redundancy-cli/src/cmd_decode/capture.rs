//! Walks the frames of a pcap or pcapng file (through the `pcap-file` crate), numbering them the
//! way Wireshark does: 1, 2, 3... over every packet record or packet block, whatever it holds.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

use pcap_file::pcap::PcapParser;
use pcap_file::pcapng::{Block, PcapNgParser};
use pcap_file::{DataLink, PcapError};

/// First four bytes of a pcapng file: the Section Header Block type.
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
/// The four classic pcap magics: microsecond and nanosecond, either byte order.
const PCAP_MAGICS: [[u8; 4]; 4] = [
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
    [0x4d, 0x3c, 0xb2, 0xa1],
];
/// Length of the classic pcap global header.
const PCAP_HEADER_LEN: u64 = 24;
/// The smallest pcapng file: a Section Header Block without options.
const PCAPNG_MIN_LEN: u64 = 28;

/// Why a capture could not be read. Each names the file and, past the header, the last frame
/// read.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The capture file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file starts with neither a pcap nor a pcapng magic number.
    #[error("{} is not a pcap or pcapng file (it starts with {magic})", path.display())]
    NotACapture {
        /// The capture file.
        path: PathBuf,
        /// The first bytes, in hex.
        magic: String,
    },
    /// The file ends inside its global header / section header block.
    #[error("{} is truncated: {len} bytes is shorter than a {format} header", path.display())]
    TruncatedHeader {
        /// The capture file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// "pcap" or "pcapng".
        format: &'static str,
    },
    /// The global header or section header block is malformed.
    #[error("{}: bad {format} header: {source}", path.display())]
    BadHeader {
        /// The capture file.
        path: PathBuf,
        /// "pcap" or "pcapng".
        format: &'static str,
        /// The parser's complaint.
        #[source]
        source: PcapError,
    },
    /// The file ends inside a packet record or block.
    #[error("{} is truncated after frame {frame}: the next record is cut short", path.display())]
    TruncatedFrame {
        /// The capture file.
        path: PathBuf,
        /// The last whole frame (0 when none).
        frame: u64,
    },
    /// A packet record or block is malformed.
    #[error("{}: unreadable record after frame {frame}: {source}", path.display())]
    BadFrame {
        /// The capture file.
        path: PathBuf,
        /// The last whole frame (0 when none).
        frame: u64,
        /// The parser's complaint.
        #[source]
        source: PcapError,
    },
    /// A record claims more than [`MAX_RECORD`] bytes.
    #[error("{}: the record after frame {frame} claims more than {MAX_RECORD} bytes", path.display())]
    RecordTooLarge {
        /// The capture file.
        path: PathBuf,
        /// The last whole frame (0 when none).
        frame: u64,
    },
    /// A pcapng packet names an interface the section never described.
    #[error("{}: frame {frame} names interface {interface}, which the file never describes", path.display())]
    UnknownInterface {
        /// The capture file.
        path: PathBuf,
        /// The frame.
        frame: u64,
        /// The interface id it names.
        interface: u32,
    },
}

/// One captured frame, borrowed from the reader for the length of a callback.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// 1-based index in the file, counting every packet as Wireshark does.
    pub number: u64,
    /// Link-layer header type of the frame.
    pub datalink: DataLink,
    /// The captured bytes (possibly cut by the snapshot length).
    pub data: &'a [u8],
}

/// Calls `each` with every frame of the pcap or pcapng file at `path`, in file order; returns
/// the number of frames. Stops at the first unreadable record, after delivering the frames
/// before it. Memory stays bounded by [`MAX_RECORD`], whatever the file says.
pub fn for_each_frame(path: &Path, each: impl FnMut(Frame<'_>)) -> Result<u64, CaptureError> {
    let file = File::open(path).map_err(|source| CaptureError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    for_each_frame_in(path, file, each)
}

/// [`for_each_frame`] over any reader; `name` is what errors call the capture.
pub fn for_each_frame_in(
    name: &Path,
    source: impl Read,
    mut each: impl FnMut(Frame<'_>),
) -> Result<u64, CaptureError> {
    let path = || name.to_path_buf();
    let mut input = Input::new(source);
    let got = input.fill_to(4).map_err(|source| CaptureError::Io {
        path: path(),
        source,
    })?;
    let head = input.available().get(..got.min(4)).unwrap_or_default();
    let format = if head == PCAPNG_MAGIC {
        "pcapng"
    } else if PCAP_MAGICS.iter().any(|m| m == head) {
        "pcap"
    } else {
        return Err(CaptureError::NotACapture {
            path: path(),
            magic: if head.is_empty() {
                "nothing: it is empty".to_string()
            } else {
                head.iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            },
        });
    };
    let min = if format == "pcap" {
        PCAP_HEADER_LEN
    } else {
        PCAPNG_MIN_LEN
    };
    let got = input
        .fill_to(min as usize)
        .map_err(|source| CaptureError::Io {
            path: path(),
            source,
        })?;
    if (got as u64) < min {
        return Err(CaptureError::TruncatedHeader {
            path: path(),
            len: got as u64,
            format,
        });
    }
    let mut number = 0u64;
    let header_error = |e: Step| match e {
        Step::Io(source) => CaptureError::Io {
            path: path(),
            source,
        },
        Step::Parse(source) => CaptureError::BadHeader {
            path: path(),
            format,
            source,
        },
        // A header (a pcapng section header with its options) cut short: nothing was consumed
        // before it, so what is held is the whole file.
        Step::Truncated(held) => CaptureError::TruncatedHeader {
            path: path(),
            len: held,
            format,
        },
        Step::TooLarge => CaptureError::RecordTooLarge {
            path: path(),
            frame: 0,
        },
    };
    let frame_error = |frame, e: Step| match e {
        Step::Io(source) => CaptureError::Io {
            path: path(),
            source,
        },
        Step::Truncated(_) => CaptureError::TruncatedFrame {
            path: path(),
            frame,
        },
        Step::TooLarge => CaptureError::RecordTooLarge {
            path: path(),
            frame,
        },
        Step::Parse(source) => CaptureError::BadFrame {
            path: path(),
            frame,
            source,
        },
    };
    // Each loop below: parse one record from the bytes held; at the end of the bytes held,
    // read more (a clean end of file between records ends the walk).
    if format == "pcap" {
        let parser = input.header(PcapParser::new).map_err(header_error)?;
        let datalink = parser.header().datalink;
        while !input.at_end() {
            // Raw records: `PcapPacket` would also reject a record longer than the snapshot
            // length, which Wireshark reads anyway.
            match parser.next_raw_packet(input.available()) {
                Ok((rest, record)) => {
                    number += 1;
                    each(Frame {
                        number,
                        datalink,
                        data: &record.data,
                    });
                    let rest = rest.len();
                    input.consume_to(rest);
                }
                Err(PcapError::IncompleteBuffer) => {
                    input.need_more().map_err(|e| frame_error(number, e))?
                }
                Err(e) => return Err(frame_error(number, Step::Parse(e))),
            }
        }
    } else {
        let mut parser = input.header(PcapNgParser::new).map_err(header_error)?;
        // The link types of the current section's interfaces, by interface id (the parser's
        // own list is borrowed by the parser while a block is in hand).
        let mut interfaces: Vec<DataLink> =
            parser.interfaces().iter().map(|i| i.linktype).collect();
        while !input.at_end() {
            match parser.next_block(input.available()) {
                Ok((rest, block)) => {
                    let rest = rest.len();
                    // Wireshark numbers every packet-carrying block: enhanced, simple and
                    // obsolete.
                    let packet = match &block {
                        Block::SectionHeader(_) => {
                            interfaces.clear();
                            None
                        }
                        Block::InterfaceDescription(idb) => {
                            interfaces.push(idb.linktype);
                            None
                        }
                        Block::EnhancedPacket(b) => Some((b.interface_id, &b.data)),
                        Block::SimplePacket(b) => Some((0, &b.data)),
                        Block::Packet(b) => Some((u32::from(b.interface_id), &b.data)),
                        _ => None,
                    };
                    if let Some((interface, data)) = packet {
                        number += 1;
                        let datalink = usize::try_from(interface)
                            .ok()
                            .and_then(|i| interfaces.get(i))
                            .copied()
                            .ok_or_else(|| CaptureError::UnknownInterface {
                                path: path(),
                                frame: number,
                                interface,
                            })?;
                        each(Frame {
                            number,
                            datalink,
                            data,
                        });
                    }
                    input.consume_to(rest);
                }
                Err(PcapError::IncompleteBuffer) => {
                    input.need_more().map_err(|e| frame_error(number, e))?
                }
                Err(e) => return Err(frame_error(number, Step::Parse(e))),
            }
        }
    }
    Ok(number)
}

/// The largest record (pcap packet record or pcapng block, header included) read: pcap-file's
/// own reader stops at the same 8 MB, and a 9000-byte jumbo frame is far below it.
pub const MAX_RECORD: usize = 8_000_000;
/// The read buffer's first size; it doubles, up to [`MAX_RECORD`], only for a record that does
/// not fit.
const FIRST_BUFFER: usize = 64 * 1024;

/// Why one step of the walk stopped.
enum Step {
    /// The file ends inside a record; the bytes of it that were there.
    Truncated(u64),
    /// A record claims more than [`MAX_RECORD`] bytes.
    TooLarge,
    /// The parser rejected the record.
    Parse(PcapError),
    /// Reading failed.
    Io(std::io::Error),
}

/// A read buffer for the slice parsers of `pcap-file`: it holds at least one whole record and
/// grows only as far as the largest record needs (pcap-file's readers zero a fixed 8 MB buffer
/// each, which made every small capture cost a few milliseconds).
struct Input<R> {
    source: R,
    buf: Vec<u8>,
    /// `buf[start..end]` is read but not yet parsed.
    start: usize,
    end: usize,
    eof: bool,
}

impl<R: Read> Input<R> {
    fn new(source: R) -> Input<R> {
        Input {
            source,
            buf: Vec::new(),
            start: 0,
            end: 0,
            eof: false,
        }
    }

    fn available(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    /// Reads until at least `want` unparsed bytes are held or the source ends; returns how many
    /// are held.
    fn fill_to(&mut self, want: usize) -> std::io::Result<usize> {
        while self.end - self.start < want && !self.eof {
            self.read_more(want)?;
        }
        Ok(self.end - self.start)
    }

    /// Moves the unparsed bytes to the front, grows the buffer if it is full (so that it can
    /// hold `want` bytes, at least doubling, at most [`MAX_RECORD`]), and reads once.
    fn read_more(&mut self, want: usize) -> std::io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let size = (self.buf.len() * 2)
                .max(FIRST_BUFFER)
                .max(want)
                .min(MAX_RECORD);
            self.buf.resize(size, 0);
        }
        let free = self.buf.get_mut(self.end..).unwrap_or_default();
        if free.is_empty() {
            return Ok(());
        }
        loop {
            match self.source.read(free) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Parses the file's header (pcap global header or pcapng section header) with `parse`,
    /// reading as much as it needs.
    fn header<P>(
        &mut self,
        parse: impl Fn(&[u8]) -> Result<(&[u8], P), PcapError>,
    ) -> Result<P, Step> {
        loop {
            match parse(self.available()) {
                Ok((rest, parser)) => {
                    let rest = rest.len();
                    self.consume_to(rest);
                    return Ok(parser);
                }
                Err(PcapError::IncompleteBuffer) => self.need_more()?,
                Err(e) => return Err(Step::Parse(e)),
            }
        }
    }

    /// Marks everything parsed but the last `rest` bytes held.
    fn consume_to(&mut self, rest: usize) {
        self.start = self.end.saturating_sub(rest).max(self.start);
    }

    /// Whether the walk is done: nothing held and nothing more to read (reads if nothing is
    /// held and the source may have more).
    fn at_end(&mut self) -> bool {
        if self.start == self.end && !self.eof {
            // An error here shows again (and is reported) on the next read.
            let _ = self.read_more(1);
        }
        self.start == self.end && self.eof
    }

    /// The record held is incomplete: read more of it, or say why not.
    fn need_more(&mut self) -> Result<(), Step> {
        let held = self.end - self.start;
        if self.eof {
            return Err(Step::Truncated(held as u64));
        }
        if held >= MAX_RECORD {
            return Err(Step::TooLarge);
        }
        self.read_more(held + 1).map_err(Step::Io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
        std::fs::read(dir.join(name)).expect("fixture")
    }

    /// A reader that hands out at most `step` bytes per call, so records straddle every
    /// possible buffer boundary.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.step).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn frames(data: &[u8], step: usize) -> Result<Vec<(u64, Vec<u8>)>, CaptureError> {
        let mut got = Vec::new();
        for_each_frame_in(Path::new("t"), Trickle { data, step }, |f| {
            got.push((f.number, f.data.to_vec()))
        })
        .map(|n| {
            assert_eq!(n, got.len() as u64);
            got
        })
    }

    #[test]
    fn frames_are_the_same_however_the_reads_are_cut() {
        for name in ["vrrp-v2.pcap", "vrrp-v2.pcapng"] {
            let data = fixture(name);
            let whole = frames(&data, usize::MAX).expect("reads");
            assert!(whole.len() > 10, "{name}: {} frames", whole.len());
            for step in [1, 3, 17, 100, 4096] {
                assert_eq!(
                    frames(&data, step).expect("reads"),
                    whole,
                    "{name}, step {step}"
                );
            }
        }
    }

    #[test]
    fn a_section_header_cut_inside_its_options_names_the_bytes_there_were() {
        let data = fixture("vrrp-v2.pcapng");
        // The fixture's section header block is 108 bytes (options included).
        assert_eq!(data[4..8], 108u32.to_le_bytes());
        match frames(&data[..100], 7) {
            Err(CaptureError::TruncatedHeader {
                len: 100,
                format: "pcapng",
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_record_larger_than_the_cap_is_refused_without_reading_it_all() {
        // A pcap header, then one record claiming (and holding) MAX_RECORD + 1 bytes.
        let mut data = fixture("vrrp-v2.pcap")[..24].to_vec();
        let len = (MAX_RECORD + 1) as u32;
        data.extend_from_slice(&[0; 8]);
        data.extend_from_slice(&len.to_le_bytes());
        data.extend_from_slice(&len.to_le_bytes());
        data.resize(data.len() + MAX_RECORD + 1, 0);
        // The fixture's magic is little-endian (d4 c3 b2 a1), as the lengths written above.
        assert_eq!(data[..4], [0xd4, 0xc3, 0xb2, 0xa1]);
        match frames(&data, usize::MAX) {
            Err(CaptureError::RecordTooLarge { frame: 0, .. }) => {}
            other => panic!("{other:?}"),
        }
        // The same claim in a file that ends early is a truncation.
        data.truncate(24 + 16 + 100);
        match frames(&data, usize::MAX) {
            Err(CaptureError::TruncatedFrame { frame: 0, .. }) => {}
            other => panic!("{other:?}"),
        }
    }
}
