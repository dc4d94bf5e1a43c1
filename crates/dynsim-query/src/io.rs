//! Frames in and out of files, and between polars and arrow-rs.
//!
//! dynsim reads and writes every Parquet file with one stack, the `arrow` and `parquet`
//! crates (arrow-rs), and uses polars only in memory, for queries. So polars is built
//! without its own Parquet and CSV readers (which would also pull its streaming engine and,
//! through it, a cloud-storage client). A frame crosses between the two libraries through
//! the [Arrow C Data Interface](https://arrow.apache.org/docs/format/CDataInterface.html):
//! both sides export and import the same `#[repr(C)]` structs, so a column moves without a
//! per-value copy and any Arrow type crosses (numbers, strings, booleans, lists, structs,
//! temporal types), not only the ones dynsim writes itself.
//!
//! - [`read_parquet`]: any Parquet file as a polars `DataFrame`.
//! - [`write_frame`]: a `DataFrame` as `.parquet` (zstd, through arrow-rs) or `.csv` (with
//!   a header, written from the frame itself), chosen by the extension, written atomically
//!   (temporary file, fsync, rename). `dynsim compare -o` and `dynsim sql -o` use it.
//! - [`frame_to_batch`] / [`batch_to_frame`]: the conversions themselves.
//!
//! ```no_run
//! use dynsim_query::io::{read_parquet, write_frame};
//! # let store = dynsim_query::Store::open("dynsim-store")?;
//! let df = dynsim_query::sql(&store, "SELECT task, COUNT(*) AS n FROM recordings GROUP BY task")?;
//! write_frame(&df, std::path::Path::new("tasks.parquet"))?;
//! assert_eq!(read_parquet(std::path::Path::new("tasks.parquet"))?, df);
//! # Ok::<(), dynsim_query::QueryError>(())
//! ```

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow_array::ffi::{from_ffi, to_ffi, FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::{make_array, new_empty_array, ArrayRef as RsArrayRef, RecordBatch, RecordBatchOptions};
use arrow_schema::{Field as RsField, Schema as RsSchema};
use dynsim_store::fsutil::atomic_write;
use dynsim_store::table::{read_table, write_table};
use dynsim_store::StoreError;
use polars::prelude::*;
use polars_arrow::ffi as pl_ffi;

use crate::error::QueryError;

/// The file formats [`write_frame`] writes, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameFormat {
    /// `.parquet`: zstd-compressed Parquet with the Arrow schema embedded.
    Parquet,
    /// `.csv`: comma-separated, one header line, RFC 4180 quoting.
    Csv,
}

impl FrameFormat {
    /// The format of `path` from its extension (case-insensitive), or an error that names
    /// the path and the extensions accepted.
    pub fn of(path: &Path) -> Result<FrameFormat, QueryError> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
        match ext.as_str() {
            "parquet" => Ok(FrameFormat::Parquet),
            "csv" => Ok(FrameFormat::Csv),
            _ => Err(QueryError::Output {
                path: path.to_path_buf(),
                detail: format!("unknown extension {ext:?}; use .parquet or .csv"),
            }),
        }
    }
}

/// polars' column as an arrow-rs array and field (nullable, named as the column).
fn column_to_arrow(col: &Column) -> Result<(RsField, RsArrayRef), QueryError> {
    let s = col.as_materialized_series().rechunk();
    let name = s.name().to_string();
    let bad = |e: String| QueryError::Conversion(format!("column {name:?} ({}) cannot become Arrow: {e}", s.dtype()));
    let pl_field = s.field().to_arrow(CompatLevel::oldest());
    let c_schema = pl_ffi::export_field_to_c(&pl_field);
    // SAFETY: polars_arrow's `ArrowSchema` and arrow-rs' `FFI_ArrowSchema` are both the
    // `#[repr(C)]` `struct ArrowSchema` of the Arrow C Data Interface (same fields, same
    // order; `transmute` also checks the size). Ownership moves with the value: the
    // release callback polars installed is called once, by arrow-rs' `Drop`.
    let c_schema: FFI_ArrowSchema = unsafe { std::mem::transmute::<pl_ffi::ArrowSchema, FFI_ArrowSchema>(c_schema) };
    let rs_field = RsField::try_from(&c_schema).map_err(|e| bad(e.to_string()))?;
    let rs_type = rs_field.data_type().clone();
    let array = if s.chunks().is_empty() {
        new_empty_array(&rs_type)
    } else {
        let c_array = pl_ffi::export_array_to_c(s.to_arrow(0, CompatLevel::oldest()));
        // SAFETY: as above, for `struct ArrowArray`; `from_ffi` takes ownership of the array
        // and validates its buffers against the schema.
        let c_array: FFI_ArrowArray = unsafe { std::mem::transmute::<pl_ffi::ArrowArray, FFI_ArrowArray>(c_array) };
        // SAFETY: `c_array` and `c_schema` were exported together by polars_arrow.
        let data = unsafe { from_ffi(c_array, &c_schema) }.map_err(|e| bad(e.to_string()))?;
        make_array(data)
    };
    Ok((RsField::new(name, rs_type, true), array))
}

/// One arrow-rs array as a polars series named `name`.
fn arrow_to_series(name: &str, array: &dyn arrow_array::Array) -> Result<Series, QueryError> {
    let bad = |e: String| {
        QueryError::Conversion(format!("column {name:?} ({}) cannot become polars: {e}", array.data_type()))
    };
    let (c_array, c_schema) = to_ffi(&array.to_data()).map_err(|e| bad(e.to_string()))?;
    // SAFETY: the same C Data Interface structs as in `column_to_arrow`, in the other
    // direction; polars' `Drop` releases them.
    let c_array = unsafe { std::mem::transmute::<FFI_ArrowArray, pl_ffi::ArrowArray>(c_array) };
    let c_schema = unsafe { std::mem::transmute::<FFI_ArrowSchema, pl_ffi::ArrowSchema>(c_schema) };
    // SAFETY: exported together by arrow-rs just above.
    let field = unsafe { pl_ffi::import_field_from_c(&c_schema) }.map_err(|e| bad(e.to_string()))?;
    let arr = unsafe { pl_ffi::import_array_from_c(c_array, field.dtype().clone()) }.map_err(|e| bad(e.to_string()))?;
    Series::from_arrow(name.into(), arr).map_err(|e| bad(e.to_string()))
}

/// A polars frame as one arrow-rs record batch: same column names and order, every field
/// nullable, strings as `LargeUtf8` and lists as `LargeList` (polars' oldest Arrow
/// compatibility level, which every Arrow reader understands).
pub fn frame_to_batch(df: &DataFrame) -> Result<RecordBatch, QueryError> {
    let (fields, arrays): (Vec<RsField>, Vec<RsArrayRef>) =
        df.columns().iter().map(column_to_arrow).collect::<Result<Vec<_>, _>>()?.into_iter().unzip();
    let schema = Arc::new(RsSchema::new(fields));
    let opts = RecordBatchOptions::new().with_row_count(Some(df.height()));
    RecordBatch::try_new_with_options(schema, arrays, &opts)
        .map_err(|e| QueryError::Conversion(format!("the frame cannot become an Arrow record batch: {e}")))
}

/// Record batches of one schema as one polars frame (the batches become the chunks of each
/// column; call `rechunk` for one contiguous chunk).
pub fn batch_to_frame(schema: &RsSchema, batches: &[RecordBatch]) -> Result<DataFrame, QueryError> {
    let height = batches.iter().map(RecordBatch::num_rows).sum();
    let mut cols = Vec::with_capacity(schema.fields().len());
    for (i, f) in schema.fields().iter().enumerate() {
        let mut series: Option<Series> = None;
        for b in batches {
            let part = arrow_to_series(f.name(), b.column(i).as_ref())?;
            match series.as_mut() {
                None => series = Some(part),
                Some(s) => {
                    s.append_owned(part)?;
                }
            }
        }
        let s = match series {
            Some(s) => s,
            None => arrow_to_series(f.name(), new_empty_array(f.data_type()).as_ref())?,
        };
        cols.push(s.into_column());
    }
    Ok(DataFrame::new(height, cols)?)
}

/// Read a Parquet file (any writer: dynsim, pyarrow, polars, DuckDB, Spark) as a polars
/// frame. Errors name the file.
pub fn read_parquet(path: &Path) -> Result<DataFrame, QueryError> {
    let (schema, batches) = read_table(path)?;
    batch_to_frame(&schema, &batches)
}

/// Write `df` to `path` as `.parquet` (zstd level 3) or `.csv`, by the extension
/// ([`FrameFormat::of`]). The file appears complete or not at all (temporary file, fsync,
/// rename).
///
/// CSV: a header line with the column names, then one line per row; values as polars
/// prints them when cast to strings (`0.5`, `-2.0`, `NaN`, `true`), null as an empty field,
/// and a field quoted (`"` doubled) when it holds a comma, a quote or a line break
/// (RFC 4180). A type CSV cannot hold (lists, structs, binary) is an error naming the column.
pub fn write_frame(df: &DataFrame, path: &Path) -> Result<(), QueryError> {
    match FrameFormat::of(path)? {
        FrameFormat::Parquet => {
            let batch = frame_to_batch(df)?;
            atomic_write(path, |tmp| write_table(tmp, &batch))?;
        }
        FrameFormat::Csv => {
            let columns = csv_columns(df, path)?;
            atomic_write(path, |tmp| {
                let file = File::create(tmp).map_err(StoreError::io(tmp))?;
                let mut w = std::io::BufWriter::new(file);
                write_csv(df, &columns, &mut w).map_err(StoreError::io(tmp))?;
                let file = w.into_inner().map_err(|e| StoreError::io(tmp)(e.into_error()))?;
                file.sync_all().map_err(StoreError::io(tmp))
            })?;
        }
    }
    Ok(())
}

/// Every column of `df` as strings, or an error naming a column CSV cannot hold.
fn csv_columns(df: &DataFrame, path: &Path) -> Result<Vec<StringChunked>, QueryError> {
    let mut out = Vec::with_capacity(df.width());
    for col in df.columns() {
        let dt = col.dtype();
        if dt.is_nested() || matches!(dt, DataType::Binary | DataType::BinaryOffset) {
            return Err(QueryError::Output {
                path: path.to_path_buf(),
                detail: format!(
                    "column {:?} has type {dt}, which CSV cannot hold; write .parquet, or select or cast the column",
                    col.name().as_str()
                ),
            });
        }
        let text = col.as_materialized_series().cast(&DataType::String)?;
        out.push(text.str()?.rechunk().into_owned());
    }
    Ok(out)
}

fn write_csv(df: &DataFrame, columns: &[StringChunked], w: &mut impl Write) -> std::io::Result<()> {
    let names: Vec<&str> = df.get_column_names().into_iter().map(|n| n.as_str()).collect();
    write_csv_line(w, names.iter().map(|n| Some(*n)))?;
    for row in 0..df.height() {
        write_csv_line(w, columns.iter().map(|c| c.get(row)))?;
    }
    w.flush()
}

fn write_csv_line<'a>(w: &mut impl Write, fields: impl Iterator<Item = Option<&'a str>>) -> std::io::Result<()> {
    for (i, field) in fields.enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        let Some(text) = field else { continue };
        if text.contains([',', '"', '\n', '\r']) {
            w.write_all(b"\"")?;
            w.write_all(text.replace('"', "\"\"").as_bytes())?;
            w.write_all(b"\"")?;
        } else {
            w.write_all(text.as_bytes())?;
        }
    }
    w.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DataFrame {
        df!(
            "name" => ["a", "b,c", "d\"e"],
            "n" => [Some(1i64), None, Some(3)],
            "x" => [0.5f64, f64::NAN, -2.0],
            "u" => [1u32, 2, 3],
            "flag" => [true, false, true],
        )
        .expect("frame")
    }

    #[test]
    fn frames_cross_to_arrow_and_back_unchanged() {
        let df = sample();
        let batch = frame_to_batch(&df).expect("to arrow");
        assert_eq!(batch.num_rows(), 3);
        assert_eq!(batch.schema().field(0).data_type(), &arrow_schema::DataType::LargeUtf8);
        assert_eq!(batch.column(1).null_count(), 1);
        let back = batch_to_frame(&batch.schema(), &[batch.clone(), batch.clone()]).expect("back");
        assert_eq!(back.height(), 6);
        assert!(back.slice(3, 3).equals_missing(&df), "{back}");
        let empty = df.head(Some(0));
        let eb = frame_to_batch(&empty).expect("empty");
        assert_eq!(eb.num_rows(), 0);
        let eback = batch_to_frame(&eb.schema(), &[]).expect("empty back");
        assert_eq!(eback.schema(), empty.schema());
    }

    #[test]
    fn parquet_and_csv_files_hold_the_frame() {
        let dir = tempfile::tempdir().expect("tempdir");
        let df = sample();
        let p = dir.path().join("f.parquet");
        write_frame(&df, &p).expect("parquet");
        assert!(read_parquet(&p).expect("read").equals_missing(&df));
        let c = dir.path().join("f.CSV");
        write_frame(&df, &c).expect("csv");
        let text = std::fs::read_to_string(&c).expect("csv text");
        assert_eq!(text.lines().next(), Some("name,n,x,u,flag"));
        assert_eq!(text.lines().nth(2), Some("\"b,c\",,NaN,2,false"));
        assert_eq!(text.lines().nth(3), Some("\"d\"\"e\",3,-2.0,3,true"));
        let err = write_frame(&df, &dir.path().join("f.txt")).expect_err("extension");
        assert!(err.to_string().contains("use .parquet or .csv"), "{err}");
        let lists = df!("l" => [Series::new("".into(), [1i64, 2])]).expect("list frame");
        let err = write_frame(&lists, &dir.path().join("l.csv")).expect_err("list in csv");
        assert!(err.to_string().contains("column \"l\""), "{err}");
        write_frame(&lists, &dir.path().join("l.parquet")).expect("list in parquet");
        assert!(read_parquet(&dir.path().join("l.parquet")).expect("read").equals_missing(&lists));
        let err = read_parquet(&c).expect_err("csv is not parquet");
        assert!(err.to_string().contains("f.CSV"), "{err}");
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["f.CSV", "f.parquet", "l.parquet"],
            "refused writes leave nothing, not even a temporary file"
        );
    }
}
