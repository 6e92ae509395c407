//! Decode one VRRP advertisement given as hex on the command line (filled in by the codec work).
fn main() {}
