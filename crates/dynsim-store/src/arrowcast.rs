//! The Arrow type conversions dynsim needs when it reads Parquet written by others (pyarrow,
//! pandas, polars, DuckDB): numbers of any width to `f32` / `f64` / `i64`, and strings of any
//! layout (`Utf8`, `LargeUtf8`, `Utf8View`, dictionary-encoded, as pandas categoricals
//! are) to `Utf8`. Nulls stay null.
//!
//! These few functions replace arrow-rs' general `arrow-cast` crate, which (with the
//! ordering kernels it needs) is about 4 CPU minutes of a clean build for the five
//! conversions used here. Unlike a general cast, a conversion to an integer refuses a value
//! it would change (1.5, or a `u64` above `i64::MAX`) instead of truncating it.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    ArrowPrimitiveType, Float16Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type,
    UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, Float32Array, Float64Array, Int64Array, PrimitiveArray, StringArray};
use arrow_schema::DataType;

/// Apply `f` to every value of a primitive array of type `T` (nulls kept).
fn map<T: ArrowPrimitiveType, O: ArrowPrimitiveType>(
    a: &dyn Array,
    f: impl Fn(T::Native) -> O::Native,
) -> PrimitiveArray<O> {
    a.as_primitive::<T>().unary(f)
}

/// Every number type as `(value as f64)`; `None` for a type that is not a number.
macro_rules! numbers {
    ($a:expr, $out:ty, $conv:ident) => {
        match $a.data_type() {
            DataType::Float16 => Some(map::<Float16Type, $out>($a, |x| x.$conv())),
            DataType::Float32 => Some(map::<Float32Type, $out>($a, |x| x as _)),
            DataType::Float64 => Some(map::<Float64Type, $out>($a, |x| x as _)),
            DataType::Int8 => Some(map::<Int8Type, $out>($a, |x| x as _)),
            DataType::Int16 => Some(map::<Int16Type, $out>($a, |x| x as _)),
            DataType::Int32 => Some(map::<Int32Type, $out>($a, |x| x as _)),
            DataType::Int64 => Some(map::<Int64Type, $out>($a, |x| x as _)),
            DataType::UInt8 => Some(map::<UInt8Type, $out>($a, |x| x as _)),
            DataType::UInt16 => Some(map::<UInt16Type, $out>($a, |x| x as _)),
            DataType::UInt32 => Some(map::<UInt32Type, $out>($a, |x| x as _)),
            DataType::UInt64 => Some(map::<UInt64Type, $out>($a, |x| x as _)),
            _ => None,
        }
    };
}

/// A column of numbers (floats or integers of any width) as `f32`, rounded to nearest.
pub fn to_f32(a: &dyn Array) -> Result<Float32Array, String> {
    numbers!(a, Float32Type, to_f32).ok_or_else(|| format!("type {} is not a number", a.data_type()))
}

/// A column of numbers (floats or integers of any width) as `f64` (exact for every
/// integer up to 2^53).
pub fn to_f64(a: &dyn Array) -> Result<Float64Array, String> {
    numbers!(a, Float64Type, to_f64).ok_or_else(|| format!("type {} is not a number", a.data_type()))
}

/// A column of integers (any width), booleans (0/1) or integral floats as `i64`. A value
/// that would change (a fraction, NaN, or beyond `i64`) is an error naming its row.
pub fn to_i64(a: &dyn Array) -> Result<Int64Array, String> {
    fn checked<T: ArrowPrimitiveType>(
        a: &dyn Array,
        conv: impl Fn(T::Native) -> Option<i64>,
    ) -> Result<Int64Array, String>
    where
        T::Native: std::fmt::Display,
    {
        let p = a.as_primitive::<T>();
        let mut out = Vec::with_capacity(p.len());
        for (row, v) in p.iter().enumerate() {
            out.push(match v {
                None => None,
                Some(x) => Some(conv(x).ok_or_else(|| format!("row {row}: {x} is not an integer that fits i64"))?),
            });
        }
        Ok(Int64Array::from(out))
    }
    fn float(x: f64) -> Option<i64> {
        // -2^63 and 2^63 are exact in f64; the range check excludes 2^63 itself.
        (x.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&x)).then_some(x as i64)
    }
    Ok(match a.data_type() {
        DataType::Boolean => a.as_boolean().iter().map(|v| v.map(i64::from)).collect(),
        DataType::Int8 => map::<Int8Type, Int64Type>(a, i64::from),
        DataType::Int16 => map::<Int16Type, Int64Type>(a, i64::from),
        DataType::Int32 => map::<Int32Type, Int64Type>(a, i64::from),
        DataType::Int64 => a.as_primitive::<Int64Type>().clone(),
        DataType::UInt8 => map::<UInt8Type, Int64Type>(a, i64::from),
        DataType::UInt16 => map::<UInt16Type, Int64Type>(a, i64::from),
        DataType::UInt32 => map::<UInt32Type, Int64Type>(a, i64::from),
        DataType::UInt64 => checked::<UInt64Type>(a, |x| i64::try_from(x).ok())?,
        DataType::Float16 => checked::<Float16Type>(a, |x| float(x.to_f64()))?,
        DataType::Float32 => checked::<Float32Type>(a, |x| float(f64::from(x)))?,
        DataType::Float64 => checked::<Float64Type>(a, float)?,
        other => return Err(format!("type {other} is not an integer")),
    })
}

/// A column of strings in any layout (`Utf8`, `LargeUtf8`, `Utf8View`, or a dictionary of
/// those with any key type) as `Utf8`.
pub fn to_utf8(a: &dyn Array) -> Result<StringArray, String> {
    Ok(match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().clone(),
        DataType::LargeUtf8 => a.as_string::<i64>().iter().collect(),
        DataType::Utf8View => a.as_string_view().iter().collect(),
        DataType::Dictionary(_, _) => {
            let d = a.as_any_dictionary();
            let values = to_utf8(d.values().as_ref())?;
            let keys = d.normalized_keys();
            (0..a.len())
                .map(|i| {
                    let k = keys[i];
                    (a.is_valid(i) && k < values.len() && values.is_valid(k)).then(|| values.value(k))
                })
                .collect()
        }
        other => return Err(format!("type {other} is not a string")),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::types::Int8Type;
    use arrow_array::{BooleanArray, DictionaryArray, Int32Array, LargeStringArray, StringViewArray, UInt64Array};

    use super::*;

    #[test]
    fn numbers_of_every_width_convert_and_keep_nulls() {
        let i = Int32Array::from(vec![Some(1), None, Some(-7)]);
        assert_eq!(to_f32(&i).expect("f32"), Float32Array::from(vec![Some(1.0), None, Some(-7.0)]));
        assert_eq!(to_f64(&i).expect("f64"), Float64Array::from(vec![Some(1.0), None, Some(-7.0)]));
        assert_eq!(to_i64(&i).expect("i64"), Int64Array::from(vec![Some(1), None, Some(-7)]));
        let h = PrimitiveArray::<Float16Type>::from(vec![half::f16::from_f32(0.5), half::f16::from_f32(-2.0)]);
        assert_eq!(to_f64(&h).expect("f16"), Float64Array::from(vec![0.5, -2.0]));
        assert_eq!(to_i64(&h).expect_err("0.5").to_string(), "row 0: 0.5 is not an integer that fits i64");
        let f = Float64Array::from(vec![0.1, 3.0]);
        assert_eq!(to_f32(&f).expect("f32").value(0), 0.1f32);
        assert!(to_i64(&f).expect_err("fraction").contains("row 0"));
        assert_eq!(to_i64(&Float64Array::from(vec![3.0, -4.0])).expect("integral"), Int64Array::from(vec![3, -4]));
        assert!(to_i64(&Float64Array::from(vec![f64::NAN])).is_err());
        assert!(to_i64(&Float64Array::from(vec![9.3e18])).is_err());
        assert!(to_i64(&UInt64Array::from(vec![u64::MAX])).expect_err("too big").contains("18446744073709551615"));
        assert_eq!(
            to_i64(&BooleanArray::from(vec![Some(true), None])).expect("bool"),
            Int64Array::from(vec![Some(1), None])
        );
        assert!(to_f64(&StringArray::from(vec!["1"])).expect_err("string").contains("not a number"));
    }

    #[test]
    fn strings_of_every_layout_become_utf8() {
        let want = StringArray::from(vec![Some("a"), None, Some("bc")]);
        assert_eq!(to_utf8(&want).expect("utf8"), want);
        assert_eq!(to_utf8(&LargeStringArray::from(vec![Some("a"), None, Some("bc")])).expect("large"), want);
        assert_eq!(to_utf8(&StringViewArray::from(vec![Some("a"), None, Some("bc")])).expect("view"), want);
        let dict = DictionaryArray::<Int8Type>::new(
            arrow_array::Int8Array::from(vec![Some(1), None, Some(0)]),
            Arc::new(StringArray::from(vec!["bc", "a"])),
        );
        assert_eq!(to_utf8(&dict).expect("dictionary"), want);
        assert!(to_utf8(&Int32Array::from(vec![1])).expect_err("number").contains("not a string"));
    }
}
