//! Minimal reader for the little-endian float32 `.npy` reference arrays.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn assets() -> PathBuf {
    let dir = match std::env::var_os("GLAGOL_TEST_ASSETS") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    };
    assert!(
        dir.join("fixtures").is_dir(),
        "test assets not found at {} — set GLAGOL_TEST_ASSETS",
        dir.display()
    );
    dir
}

/// (shape, data) of a `<f4` C-order array.
pub fn load_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let (header_len, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        )
    };
    let header = std::str::from_utf8(&bytes[start..start + header_len]).unwrap();
    assert!(header.contains("'descr': '<f4'"), "{header}");
    let fortran = header.contains("'fortran_order': True");
    let shape_str = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let shape: Vec<usize> = shape_str
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let data: Vec<f32> = bytes[start + header_len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(data.len(), shape.iter().product::<usize>());
    if !fortran {
        return (shape, data);
    }
    // Column-major → row-major.
    let n = data.len();
    let mut strides = vec![1usize; shape.len()];
    for i in 1..shape.len() {
        strides[i] = strides[i - 1] * shape[i - 1];
    }
    let mut out = vec![0.0f32; n];
    let mut idx = vec![0usize; shape.len()];
    for slot in out.iter_mut() {
        let src: usize = idx.iter().zip(&strides).map(|(i, s)| i * s).sum();
        *slot = data[src];
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    (shape, out)
}
