//! Walks the frames of a pcap or pcapng file (through the `pcap-file` crate), numbering them the
//! way Wireshark does: 1, 2, 3... over every packet record or packet block, whatever it holds.

use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};
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
/// before it. Memory stays bounded by the reader's fixed buffer, whatever the file says.
pub fn for_each_frame(path: &Path, mut each: impl FnMut(Frame<'_>)) -> Result<u64, CaptureError> {
    let io = |source| CaptureError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut magic = [0u8; 4];
    let got = read_up_to(&mut file, &mut magic).map_err(io)?;
    let head = magic.get(..got).unwrap_or_default();
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let format = if head == PCAPNG_MAGIC {
        "pcapng"
    } else if PCAP_MAGICS.iter().any(|m| m == head) {
        "pcap"
    } else {
        return Err(CaptureError::NotACapture {
            path: path.to_path_buf(),
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
    if len < min {
        return Err(CaptureError::TruncatedHeader {
            path: path.to_path_buf(),
            len,
            format,
        });
    }
    let bad_header = |source| CaptureError::BadHeader {
        path: path.to_path_buf(),
        format,
        source,
    };
    let mut number = 0u64;
    let frame_error = |frame, source| match source {
        PcapError::IoError(e) if e.kind() == ErrorKind::UnexpectedEof => {
            CaptureError::TruncatedFrame {
                path: path.to_path_buf(),
                frame,
            }
        }
        PcapError::IncompleteBuffer => CaptureError::TruncatedFrame {
            path: path.to_path_buf(),
            frame,
        },
        source => CaptureError::BadFrame {
            path: path.to_path_buf(),
            frame,
            source,
        },
    };
    if format == "pcap" {
        let mut reader = PcapReader::new(file).map_err(bad_header)?;
        let datalink = reader.header().datalink;
        // Raw records: `PcapPacket` would also reject a record longer than the snapshot length,
        // which Wireshark reads anyway.
        while let Some(record) = reader.next_raw_packet() {
            let record = record.map_err(|e| frame_error(number, e))?;
            number += 1;
            each(Frame {
                number,
                datalink,
                data: &record.data,
            });
        }
    } else {
        let mut reader = PcapNgReader::new(file).map_err(bad_header)?;
        // The link types of the current section's interfaces, by interface id (a block borrows
        // the reader, so the reader's own list cannot be consulted while one is in hand).
        let mut interfaces: Vec<DataLink> = Vec::new();
        while let Some(block) = reader.next_block() {
            let block = block.map_err(|e| frame_error(number, e))?;
            // Wireshark numbers every packet-carrying block: enhanced, simple and obsolete.
            let (interface, data) = match &block {
                Block::SectionHeader(_) => {
                    interfaces.clear();
                    continue;
                }
                Block::InterfaceDescription(idb) => {
                    interfaces.push(idb.linktype);
                    continue;
                }
                Block::EnhancedPacket(b) => (b.interface_id, &b.data),
                Block::SimplePacket(b) => (0, &b.data),
                Block::Packet(b) => (u32::from(b.interface_id), &b.data),
                _ => continue,
            };
            number += 1;
            let datalink = usize::try_from(interface)
                .ok()
                .and_then(|i| interfaces.get(i))
                .copied()
                .ok_or_else(|| CaptureError::UnknownInterface {
                    path: path.to_path_buf(),
                    frame: number,
                    interface,
                })?;
            each(Frame {
                number,
                datalink,
                data,
            });
        }
    }
    Ok(number)
}

/// Reads until `buf` is full or the file ends; returns how much was read.
fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while let Some(rest) = buf.get_mut(got..).filter(|r| !r.is_empty()) {
        match file.read(rest) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
