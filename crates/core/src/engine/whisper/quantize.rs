//! Quantized copies of whisper.cpp models, made with ggml's own routines.
//!
//! The file keeps whisper.cpp's ggml layout (header, mel filters,
//! vocabulary, then tensors); every 2-D weight matrix is re-encoded in the
//! chosen block format and the rest is copied, as whisper.cpp's `quantize`
//! tool does, so whisper.cpp loads the result like a published quantized
//! model. Tensors are read one at a time: memory stays at one tensor.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use whisper_rs::whisper_rs_sys as sys;

/// A ggml block format for the weight matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantType {
    Q8_0,
    Q5_1,
    Q5_0,
    Q4_0,
}

impl QuantType {
    pub const ALL: [QuantType; 4] = [
        QuantType::Q8_0,
        QuantType::Q5_1,
        QuantType::Q5_0,
        QuantType::Q4_0,
    ];

    pub fn name(self) -> &'static str {
        match self {
            QuantType::Q8_0 => "q8_0",
            QuantType::Q5_1 => "q5_1",
            QuantType::Q5_0 => "q5_0",
            QuantType::Q4_0 => "q4_0",
        }
    }

    fn tensor_type(self) -> sys::ggml_type {
        match self {
            QuantType::Q8_0 => sys::ggml_type_GGML_TYPE_Q8_0,
            QuantType::Q5_1 => sys::ggml_type_GGML_TYPE_Q5_1,
            QuantType::Q5_0 => sys::ggml_type_GGML_TYPE_Q5_0,
            QuantType::Q4_0 => sys::ggml_type_GGML_TYPE_Q4_0,
        }
    }

    /// The file type recorded in the header.
    fn file_type(self) -> i32 {
        match self {
            QuantType::Q8_0 => sys::ggml_ftype_GGML_FTYPE_MOSTLY_Q8_0,
            QuantType::Q5_1 => sys::ggml_ftype_GGML_FTYPE_MOSTLY_Q5_1,
            QuantType::Q5_0 => sys::ggml_ftype_GGML_FTYPE_MOSTLY_Q5_0,
            QuantType::Q4_0 => sys::ggml_ftype_GGML_FTYPE_MOSTLY_Q4_0,
        }
    }
}

impl std::str::FromStr for QuantType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        QuantType::ALL
            .into_iter()
            .find(|t| t.name() == s.to_ascii_lowercase())
            .ok_or_else(|| format!("unknown quantization type '{s}' (q8_0, q5_1, q5_0, q4_0)"))
    }
}

/// Why a model could not be quantized.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    #[error("{0}")]
    Invalid(String),
    #[error("the model is already quantized (file type {0}); quantize an f16 or f32 model")]
    AlreadyQuantized(i32),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Sizes before and after.
#[derive(Debug, Clone, Copy)]
pub struct QuantizeReport {
    pub tensors: usize,
    pub quantized: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Tensors kept as they are, as in whisper.cpp's tool: the convolution
/// biases and the positional embeddings (read as f32 by whisper.cpp).
const KEEP: &[&str] = &[
    "encoder.conv1.bias",
    "encoder.conv2.bias",
    "encoder.positional_embedding",
    "decoder.positional_embedding",
];

const MAGIC: u32 = 0x6767_6d6c;

/// Writes a `kind`-quantized copy of the whisper.cpp model `src` to `dst`.
pub fn quantize(src: &Path, dst: &Path, kind: QuantType) -> Result<QuantizeReport, QuantizeError> {
    super::header::check_header(src).map_err(QuantizeError::Invalid)?;
    let bytes_in = std::fs::metadata(src)?.len();
    let mut input = BufReader::with_capacity(1 << 20, File::open(src)?);
    let file = File::create(dst)?;
    let mut out = BufWriter::with_capacity(1 << 20, &file);

    let magic = read_u32(&mut input)?;
    if magic != MAGIC {
        return Err(QuantizeError::Invalid("not a whisper.cpp ggml file".into()));
    }
    write_u32(&mut out, magic)?;
    // Hyperparameters: ten sizes, then the file type with the
    // quantization version folded in (version × 1000 + type).
    for _ in 0..10 {
        let v = read_i32(&mut input)?;
        write_i32(&mut out, v)?;
    }
    let ftype = read_i32(&mut input)? % sys::GGML_QNT_VERSION_FACTOR as i32;
    if ftype != 0 && ftype != 1 {
        return Err(QuantizeError::AlreadyQuantized(ftype));
    }
    write_i32(
        &mut out,
        (sys::GGML_QNT_VERSION * sys::GGML_QNT_VERSION_FACTOR) as i32 + kind.file_type(),
    )?;

    // Mel filters.
    let n_mel = read_i32(&mut input)?;
    let n_fft = read_i32(&mut input)?;
    if !(1..=512).contains(&n_mel) || !(1..=4096).contains(&n_fft) {
        return Err(QuantizeError::Invalid(format!(
            "corrupt mel filters: {n_mel} × {n_fft}"
        )));
    }
    write_i32(&mut out, n_mel)?;
    write_i32(&mut out, n_fft)?;
    copy_exact(&mut input, &mut out, 4 * n_mel as u64 * n_fft as u64)?;

    // Vocabulary.
    let n_vocab = read_i32(&mut input)?;
    if !(0..=1 << 20).contains(&n_vocab) {
        return Err(QuantizeError::Invalid(format!(
            "corrupt vocabulary size {n_vocab}"
        )));
    }
    write_i32(&mut out, n_vocab)?;
    for _ in 0..n_vocab {
        let len = read_u32(&mut input)?;
        if len > 1 << 16 {
            return Err(QuantizeError::Invalid(format!(
                "corrupt token length {len}"
            )));
        }
        write_u32(&mut out, len)?;
        copy_exact(&mut input, &mut out, len as u64)?;
    }

    let mut report = QuantizeReport {
        tensors: 0,
        quantized: 0,
        bytes_in,
        bytes_out: 0,
    };
    while let Some(tensor) = TensorHeader::read(&mut input)? {
        report.tensors += 1;
        let quantize = tensor.dims.len() == 2 && !KEEP.contains(&tensor.name.as_str());
        if !quantize {
            tensor.write(&mut out, tensor.ttype)?;
            copy_exact(
                &mut input,
                &mut out,
                tensor.elements * tensor.element_bytes(),
            )?;
            continue;
        }
        let row = tensor.dims[0] as i64;
        // SAFETY: plain functions of a ggml type.
        let block = unsafe { sys::ggml_blck_size(kind.tensor_type()) };
        if row % block != 0 {
            return Err(QuantizeError::Invalid(format!(
                "tensor {}: rows of {row} values do not divide into blocks of {block}",
                tensor.name
            )));
        }
        let values = tensor.read_f32(&mut input)?;
        let rows = tensor.elements as i64 / row;
        // SAFETY: as above.
        let row_bytes = unsafe { sys::ggml_row_size(kind.tensor_type(), row) };
        let mut packed = vec![0u8; row_bytes * rows as usize];
        // SAFETY: `values` holds rows × row floats and `packed` the
        // quantized size of as many rows; ggml needs no importance matrix
        // for these types.
        let written = unsafe {
            sys::ggml_quantize_chunk(
                kind.tensor_type(),
                values.as_ptr(),
                packed.as_mut_ptr().cast(),
                0,
                rows,
                row,
                std::ptr::null(),
            )
        };
        if written != packed.len() {
            return Err(QuantizeError::Invalid(format!(
                "tensor {}: ggml wrote {written} bytes, expected {}",
                tensor.name,
                packed.len()
            )));
        }
        tensor.write(&mut out, kind.tensor_type() as i32)?;
        out.write_all(&packed)?;
        report.quantized += 1;
    }
    out.flush()?;
    drop(out);
    file.sync_all()?;
    report.bytes_out = std::fs::metadata(dst)?.len();
    if report.quantized == 0 {
        return Err(QuantizeError::Invalid(
            "the model has no weight matrices".into(),
        ));
    }
    Ok(report)
}

/// A tensor's header in the file.
struct TensorHeader {
    dims: Vec<i32>,
    ttype: i32,
    name: String,
    elements: u64,
}

impl TensorHeader {
    /// The next header, or None at the end of the file.
    fn read(input: &mut impl Read) -> Result<Option<Self>, QuantizeError> {
        let mut first = [0u8; 4];
        match input.read(&mut first[..1])? {
            0 => return Ok(None),
            _ => input.read_exact(&mut first[1..])?,
        }
        let n_dims = i32::from_le_bytes(first);
        let name_len = read_i32(input)?;
        let ttype = read_i32(input)?;
        if !(1..=4).contains(&n_dims) || !(1..=256).contains(&name_len) {
            return Err(QuantizeError::Invalid(format!(
                "corrupt tensor header: {n_dims} dimensions, name of {name_len} bytes"
            )));
        }
        let mut dims = Vec::new();
        let mut elements: u64 = 1;
        for _ in 0..n_dims {
            let d = read_i32(input)?;
            if d < 1 {
                return Err(QuantizeError::Invalid(format!("corrupt tensor size {d}")));
            }
            elements = elements.saturating_mul(d as u64);
            dims.push(d);
        }
        if elements > 1 << 32 {
            return Err(QuantizeError::Invalid(format!(
                "corrupt tensor of {elements} values"
            )));
        }
        let mut name = vec![0u8; name_len as usize];
        input.read_exact(&mut name)?;
        let name = String::from_utf8_lossy(&name).into_owned();
        if ttype != sys::ggml_type_GGML_TYPE_F32 as i32
            && ttype != sys::ggml_type_GGML_TYPE_F16 as i32
        {
            return Err(QuantizeError::Invalid(format!(
                "tensor {name} has type {ttype}; only f32 and f16 models can be quantized"
            )));
        }
        Ok(Some(TensorHeader {
            dims,
            ttype,
            name,
            elements,
        }))
    }

    fn element_bytes(&self) -> u64 {
        if self.ttype == sys::ggml_type_GGML_TYPE_F32 as i32 {
            4
        } else {
            2
        }
    }

    fn write(&self, out: &mut impl Write, ttype: i32) -> io::Result<()> {
        write_i32(out, self.dims.len() as i32)?;
        write_i32(out, self.name.len() as i32)?;
        write_i32(out, ttype)?;
        for d in &self.dims {
            write_i32(out, *d)?;
        }
        out.write_all(self.name.as_bytes())
    }

    /// The tensor's values as f32.
    fn read_f32(&self, input: &mut impl Read) -> io::Result<Vec<f32>> {
        let n = self.elements as usize;
        let mut raw = vec![0u8; n * self.element_bytes() as usize];
        input.read_exact(&mut raw)?;
        if self.element_bytes() == 4 {
            return Ok(raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect());
        }
        let halves: Vec<u16> = raw
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .collect();
        let mut values = vec![0f32; n];
        // SAFETY: `halves` and `values` both hold n elements.
        unsafe { sys::ggml_fp16_to_fp32_row(halves.as_ptr(), values.as_mut_ptr(), n as i64) };
        Ok(values)
    }
}

fn read_i32(r: &mut impl Read) -> io::Result<i32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(i32::from_le_bytes(b))
}

fn read_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn write_i32(w: &mut impl Write, v: i32) -> io::Result<()> {
    w.write_all(&v.to_le_bytes())
}

fn write_u32(w: &mut impl Write, v: u32) -> io::Result<()> {
    w.write_all(&v.to_le_bytes())
}

fn copy_exact(r: &mut impl Read, w: &mut impl Write, n: u64) -> io::Result<()> {
    let copied = io::copy(&mut r.take(n), w)?;
    if copied != n {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the model file ends early",
        ));
    }
    Ok(())
}
