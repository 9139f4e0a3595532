//! Timed ID3 metadata as HLS streams carry it (song titles, ad markers),
//! written as an MPEG-TS of that one stream: ffmpeg has no encoder for
//! it, but copies it (`-c:d copy`) from such a file into the segments it
//! writes beside audio. The layout is that of Apple's "Timed Metadata for
//! HTTP Live Streaming": a PMT entry of stream type 0x15 with a metadata
//! pointer descriptor in the program and a metadata descriptor on the
//! stream, both naming `ID3 `, and one ID3v2.4 tag per PES packet of
//! stream id 0xBD, with its presentation time.

/// The PID of the program map table.
const PMT_PID: u16 = 0x1000;
/// The PID of the metadata stream.
const ID3_PID: u16 = 0x0100;
/// Clock rate of MPEG-TS time stamps.
const PTS_HZ: u64 = 90_000;

/// `seconds` seconds of timed ID3 metadata: a tag per second, each named
/// after its second, with the tables repeated before each.
pub fn timed_id3_stream(seconds: u32) -> Vec<u8> {
    let mut ts = TransportStream::default();
    for second in 0..seconds {
        ts.section(0, &pat());
        ts.section(PMT_PID, &pmt());
        let tag = id3_tag(&format!("second {second}"));
        ts.payload(ID3_PID, &pes(PTS_HZ * u64::from(second + 1), &tag));
    }
    ts.bytes
}

/// 188-byte packets, with a continuity counter per PID.
#[derive(Default)]
struct TransportStream {
    bytes: Vec<u8>,
    counters: std::collections::BTreeMap<u16, u8>,
}

impl TransportStream {
    /// A table section, after its pointer field.
    fn section(&mut self, pid: u16, section: &[u8]) {
        self.payload(pid, &[&[0u8][..], section].concat());
    }

    /// `payload` in as many packets as it takes, the first marked as its
    /// start, the last filled out with adaptation-field stuffing.
    fn payload(&mut self, pid: u16, payload: &[u8]) {
        for (index, chunk) in payload.chunks(184).enumerate() {
            let counter = self.counters.entry(pid).or_default();
            let start = if index == 0 { 0x40 } else { 0 };
            let [pid_high, pid_low] = pid.to_be_bytes();
            self.bytes.extend([0x47, start | pid_high, pid_low]);
            let stuffing = 184 - chunk.len();
            if stuffing == 0 {
                self.bytes.push(0x10 | *counter);
            } else {
                // An adaptation field of `stuffing` bytes: its length, then
                // (if there is room) no flags and 0xFF padding.
                self.bytes.push(0x30 | *counter);
                self.bytes.push((stuffing - 1) as u8);
                if stuffing > 1 {
                    self.bytes.push(0);
                    self.bytes.extend(std::iter::repeat_n(0xFF, stuffing - 2));
                }
            }
            self.bytes.extend(chunk);
            *counter = (*counter + 1) & 0x0F;
        }
    }
}

/// The program association table: program 1, mapped at [`PMT_PID`].
fn pat() -> Vec<u8> {
    let mut body = 1u16.to_be_bytes().to_vec();
    body.extend((0xE000 | PMT_PID).to_be_bytes());
    psi_section(0x00, &body)
}

/// The program map table: one stream of metadata, without a clock (the
/// tags carry their times).
fn pmt() -> Vec<u8> {
    // The metadata pointer descriptor: ID3 metadata, in this program.
    let mut program_info = vec![0x25, 0x0F];
    program_info.extend(id3_formats());
    program_info.extend([0x00, 0x1F]);
    program_info.extend(1u16.to_be_bytes());
    // The metadata descriptor: this stream is that ID3 metadata.
    let mut stream_info = vec![0x26, 0x0D];
    stream_info.extend(id3_formats());
    stream_info.extend([0x00, 0x0F]);

    let mut body = (0xE000u16 | 0x1FFF).to_be_bytes().to_vec();
    body.extend((0xF000 | program_info.len() as u16).to_be_bytes());
    body.extend(&program_info);
    body.push(0x15);
    body.extend((0xE000 | ID3_PID).to_be_bytes());
    body.extend((0xF000 | stream_info.len() as u16).to_be_bytes());
    body.extend(&stream_info);
    psi_section(0x02, &body)
}

/// The application and metadata formats both descriptors name: `ID3 `,
/// each after the 0xFFFF or 0xFF that says an identifier follows.
fn id3_formats() -> Vec<u8> {
    [&[0xFF, 0xFF][..], b"ID3 ", &[0xFF], b"ID3 "].concat()
}

/// A table section with `table_id`, of table 1, version 0, current, whole
/// in one section, ended by its CRC.
fn psi_section(table_id: u8, body: &[u8]) -> Vec<u8> {
    let length = (5 + body.len() + 4) as u16;
    let mut section = vec![table_id];
    section.extend((0xB000 | length).to_be_bytes());
    section.extend([0x00, 0x01, 0xC1, 0x00, 0x00]);
    section.extend(body);
    let crc = crc32_mpeg2(&section);
    section.extend(crc.to_be_bytes());
    section
}

/// The CRC of MPEG-2 tables: polynomial 0x04C11DB7, not reflected, from
/// all ones, not inverted at the end.
fn crc32_mpeg2(data: &[u8]) -> u32 {
    data.iter().fold(0xFFFF_FFFF, |crc, byte| {
        (0..8).fold(crc ^ (u32::from(*byte) << 24), |crc, _| {
            if crc & 0x8000_0000 == 0 {
                crc << 1
            } else {
                (crc << 1) ^ 0x04C1_1DB7
            }
        })
    })
}

/// A PES packet of private stream 1 holding `data`, aligned, presented at
/// `pts` (in 90 kHz ticks).
fn pes(pts: u64, data: &[u8]) -> Vec<u8> {
    let time = [
        0x21 | ((pts >> 29) & 0x0E) as u8,
        (pts >> 22) as u8,
        0x01 | ((pts >> 14) & 0xFE) as u8,
        (pts >> 7) as u8,
        0x01 | ((pts << 1) & 0xFE) as u8,
    ];
    let header = [&[0x84, 0x80, 5][..], &time].concat();
    let length = (header.len() + data.len()) as u16;
    let mut packet = vec![0x00, 0x00, 0x01, 0xBD];
    packet.extend(length.to_be_bytes());
    packet.extend(header);
    packet.extend(data);
    packet
}

/// An ID3v2.4 tag of one user text frame (`TXXX`), `title` = `text`.
fn id3_tag(text: &str) -> Vec<u8> {
    let data = [&[0x03][..], b"title\0", text.as_bytes()].concat();
    let mut frame = b"TXXX".to_vec();
    frame.extend(syncsafe(data.len()));
    frame.extend([0, 0]);
    frame.extend(data);
    let mut tag = b"ID3\x04\x00\x00".to_vec();
    tag.extend(syncsafe(frame.len()));
    tag.extend(frame);
    tag
}

/// `n` in ID3's sizes: 7 bits a byte, so no byte is 0xFF.
fn syncsafe(n: usize) -> [u8; 4] {
    [21, 14, 7, 0].map(|shift| ((n >> shift) & 0x7F) as u8)
}

#[test]
fn the_table_crc_is_that_of_mpeg_2() {
    // The check value of CRC-32/MPEG-2.
    assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_E6E7);
}
