//! The Open Inference Protocol's tensor datatypes and raw tensor data.
//!
//! A raw tensor is its elements row-major, little-endian, without padding (a `BOOL` is one
//! byte, 0 or 1). Typed `contents` (the protocol's alternative) are turned into the same raw
//! form on arrival, so the rest of the server sees one representation.

use bytes::Bytes;
use ort::value::TensorElementType;

use super::pb::InferTensorContents;

/// A datatype of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// `BOOL`: one byte, 0 or 1.
    Bool,
    /// `UINT8`.
    Uint8,
    /// `UINT16`.
    Uint16,
    /// `UINT32`.
    Uint32,
    /// `UINT64`.
    Uint64,
    /// `INT8`.
    Int8,
    /// `INT16`.
    Int16,
    /// `INT32`.
    Int32,
    /// `INT64`.
    Int64,
    /// `FP16` (described in metadata; not run by this server).
    Fp16,
    /// `BF16` (described in metadata; not run by this server).
    Bf16,
    /// `FP32`.
    Fp32,
    /// `FP64`.
    Fp64,
    /// `BYTES`: length-prefixed strings (described in metadata; not run by this server).
    Bytes,
}

impl DataType {
    /// Every datatype, for parsing.
    const ALL: [DataType; 14] = [
        DataType::Bool,
        DataType::Uint8,
        DataType::Uint16,
        DataType::Uint32,
        DataType::Uint64,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::Fp16,
        DataType::Bf16,
        DataType::Fp32,
        DataType::Fp64,
        DataType::Bytes,
    ];

    /// The protocol's name (`FP32`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::Uint8 => "UINT8",
            DataType::Uint16 => "UINT16",
            DataType::Uint32 => "UINT32",
            DataType::Uint64 => "UINT64",
            DataType::Int8 => "INT8",
            DataType::Int16 => "INT16",
            DataType::Int32 => "INT32",
            DataType::Int64 => "INT64",
            DataType::Fp16 => "FP16",
            DataType::Bf16 => "BF16",
            DataType::Fp32 => "FP32",
            DataType::Fp64 => "FP64",
            DataType::Bytes => "BYTES",
        }
    }

    /// The datatype named `name` (exact, upper case as the protocol writes it).
    pub fn parse(name: &str) -> Option<DataType> {
        Self::ALL.into_iter().find(|d| d.as_str() == name)
    }

    /// Bytes per element; `None` for `BYTES` (variable length).
    pub fn size(self) -> Option<usize> {
        Some(match self {
            DataType::Bool | DataType::Uint8 | DataType::Int8 => 1,
            DataType::Uint16 | DataType::Int16 | DataType::Fp16 | DataType::Bf16 => 2,
            DataType::Uint32 | DataType::Int32 | DataType::Fp32 => 4,
            DataType::Uint64 | DataType::Int64 | DataType::Fp64 => 8,
            DataType::Bytes => return None,
        })
    }

    /// The datatype of an ONNX tensor element type, if the protocol has one.
    pub fn from_onnx(ty: TensorElementType) -> Option<DataType> {
        Some(match ty {
            TensorElementType::Bool => DataType::Bool,
            TensorElementType::Uint8 => DataType::Uint8,
            TensorElementType::Uint16 => DataType::Uint16,
            TensorElementType::Uint32 => DataType::Uint32,
            TensorElementType::Uint64 => DataType::Uint64,
            TensorElementType::Int8 => DataType::Int8,
            TensorElementType::Int16 => DataType::Int16,
            TensorElementType::Int32 => DataType::Int32,
            TensorElementType::Int64 => DataType::Int64,
            TensorElementType::Float16 => DataType::Fp16,
            TensorElementType::Bfloat16 => DataType::Bf16,
            TensorElementType::Float32 => DataType::Fp32,
            TensorElementType::Float64 => DataType::Fp64,
            TensorElementType::String => DataType::Bytes,
            _ => return None,
        })
    }
}

impl std::fmt::Display for DataType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One tensor with raw data: what travels in `raw_input_contents` / `raw_output_contents`.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTensor {
    /// The tensor's name.
    pub name: String,
    /// Its datatype.
    pub datatype: DataType,
    /// Its shape (every dimension known, `>= 0`).
    pub shape: Vec<i64>,
    /// Its elements, row-major, little-endian.
    pub data: Bytes,
}

impl RawTensor {
    /// An `FP32` tensor from values (row-major).
    pub fn from_f32(name: impl Into<String>, shape: Vec<i64>, values: &[f32]) -> RawTensor {
        RawTensor {
            name: name.into(),
            datatype: DataType::Fp32,
            shape,
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// The values of an `FP32` tensor (an `FP64` one is narrowed), checked against the shape.
    pub fn to_f32(&self) -> Result<Vec<f32>, String> {
        self.check_size()?;
        match self.datatype {
            DataType::Fp32 => Ok(self
                .data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(le(c)))
                .collect()),
            DataType::Fp64 => Ok(self
                .data
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(le(c)) as f32)
                .collect()),
            other => Err(format!(
                "tensor {:?} is {other}; FP32 (or FP64) was expected",
                self.name
            )),
        }
    }

    /// Number of elements the shape says (`Err` for a negative dimension or an overflow).
    pub fn elements(&self) -> Result<usize, String> {
        element_count(&self.shape).ok_or_else(|| {
            format!(
                "tensor {:?} has shape {:?}: every dimension must be known (>= 0) and the \
                 element count must fit in memory",
                self.name, self.shape
            )
        })
    }

    /// `Ok` when the data holds exactly the elements the shape and datatype call for.
    pub fn check_size(&self) -> Result<(), String> {
        let elements = self.elements()?;
        let Some(size) = self.datatype.size() else {
            return Err(format!(
                "tensor {:?} is {}: this server does not carry that datatype",
                self.name, self.datatype
            ));
        };
        let expected = elements.checked_mul(size).ok_or_else(|| {
            format!(
                "tensor {:?} with shape {:?} is too large",
                self.name, self.shape
            )
        })?;
        if self.data.len() == expected {
            Ok(())
        } else {
            Err(format!(
                "tensor {:?}: {} bytes of data, but shape {:?} of {} needs {expected} \
                 ({elements} elements x {size} bytes)",
                self.name,
                self.data.len(),
                self.shape,
                self.datatype
            ))
        }
    }
}

/// Product of the dimensions; `None` for a negative dimension or an overflow.
pub fn element_count(shape: &[i64]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, d| {
        usize::try_from(*d).ok().and_then(|d| n.checked_mul(d))
    })
}

/// A little-endian chunk as an array (`chunks_exact` guarantees the length).
pub(crate) fn le<const N: usize>(chunk: &[u8]) -> [u8; N] {
    let mut bytes = [0u8; N];
    bytes.copy_from_slice(chunk);
    bytes
}

/// Typed `contents` of a tensor as raw little-endian data of `datatype`: `fp32_contents` for
/// `FP32`, `int_contents` for `INT8`/`INT16`/`INT32`, `uint_contents` for
/// `UINT8`/`UINT16`/`UINT32`, and so on, as the protocol assigns them. A value that does not fit
/// the datatype is an error.
pub fn contents_to_raw(
    name: &str,
    datatype: DataType,
    contents: &InferTensorContents,
) -> Result<Bytes, String> {
    fn narrow<S: Copy + std::fmt::Display, T: TryFrom<S>, const N: usize>(
        name: &str,
        datatype: DataType,
        values: &[S],
        to_le: impl Fn(T) -> [u8; N],
    ) -> Result<Bytes, String> {
        let mut out = Vec::with_capacity(values.len() * N);
        for v in values {
            let t = T::try_from(*v)
                .map_err(|_| format!("tensor {name:?}: value {v} does not fit {datatype}"))?;
            out.extend_from_slice(&to_le(t));
        }
        Ok(Bytes::from(out))
    }
    let c = contents;
    match datatype {
        DataType::Bool => Ok(c.bool_contents.iter().map(|b| u8::from(*b)).collect()),
        DataType::Uint8 => narrow(name, datatype, &c.uint_contents, u8::to_le_bytes),
        DataType::Uint16 => narrow(name, datatype, &c.uint_contents, u16::to_le_bytes),
        DataType::Uint32 => narrow(name, datatype, &c.uint_contents, u32::to_le_bytes),
        DataType::Uint64 => narrow(name, datatype, &c.uint64_contents, u64::to_le_bytes),
        DataType::Int8 => narrow(name, datatype, &c.int_contents, i8::to_le_bytes),
        DataType::Int16 => narrow(name, datatype, &c.int_contents, i16::to_le_bytes),
        DataType::Int32 => narrow(name, datatype, &c.int_contents, i32::to_le_bytes),
        DataType::Int64 => narrow(name, datatype, &c.int64_contents, i64::to_le_bytes),
        DataType::Fp32 => Ok(c
            .fp32_contents
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect()),
        DataType::Fp64 => Ok(c
            .fp64_contents
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect()),
        DataType::Fp16 | DataType::Bf16 | DataType::Bytes => Err(format!(
            "tensor {name:?} is {datatype}: this server takes it only as raw_input_contents \
             (and runs only BOOL, INT*, UINT*, FP32 and FP64 tensors)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in DataType::ALL {
            assert_eq!(DataType::parse(d.as_str()), Some(d));
        }
        assert_eq!(DataType::parse("fp32"), None);
        assert_eq!(DataType::parse("FLOAT"), None);
    }

    #[test]
    fn sizes_are_checked_against_the_shape() {
        let t = RawTensor::from_f32("x", vec![2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(t.data.len(), 24);
        assert_eq!(t.to_f32().unwrap(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let short = RawTensor {
            data: t.data.slice(..20),
            ..t.clone()
        };
        let err = short.check_size().unwrap_err();
        assert!(
            err.contains("20 bytes") && err.contains("needs 24"),
            "{err}"
        );
        let dynamic = RawTensor {
            shape: vec![-1, 3],
            ..t.clone()
        };
        assert!(dynamic.check_size().unwrap_err().contains(">= 0"));
        let ints = RawTensor {
            datatype: DataType::Int64,
            ..t
        };
        assert!(ints.to_f32().unwrap_err().contains("INT64"));
        assert_eq!(element_count(&[]), Some(1));
        assert_eq!(element_count(&[i64::MAX, i64::MAX]), None);
    }

    #[test]
    fn contents_become_raw_little_endian() {
        let contents = InferTensorContents {
            fp32_contents: vec![1.5, -2.0],
            int_contents: vec![-1, 300],
            uint_contents: vec![7],
            bool_contents: vec![true, false],
            ..Default::default()
        };
        let raw = contents_to_raw("x", DataType::Fp32, &contents).unwrap();
        assert_eq!(&raw[..4], &1.5f32.to_le_bytes());
        let raw = contents_to_raw("x", DataType::Int16, &contents).unwrap();
        assert_eq!(&raw[..], &[0xff, 0xff, 0x2c, 0x01]);
        let err = contents_to_raw("x", DataType::Int8, &contents).unwrap_err();
        assert!(err.contains("300") && err.contains("INT8"), "{err}");
        let raw = contents_to_raw("x", DataType::Bool, &contents).unwrap();
        assert_eq!(&raw[..], &[1, 0]);
        assert!(contents_to_raw("x", DataType::Fp16, &contents).is_err());
    }
}
