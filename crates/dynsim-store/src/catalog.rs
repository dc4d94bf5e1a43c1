//! The catalogue: one row per recording, stored as `catalog.parquet`.
//!
//! Columns, in order: `id`, the standard keys (`model`, `group`, `seed`, `checkpoint`,
//! `progress`, `task`, `condition`; null where a recording lacks them), the user keys in
//! name order (Int64, Float64 or Utf8, see [`crate::keys`]), then `n_trials`, `n_time`,
//! `n_units` (UInt32), `dtype` (of the source), `hash` (content hash), `file` (path of the
//! recording file relative to the store), `source` (`file:dataset` it came from) and
//! `ingested_at` (seconds since the Unix epoch).
//!
//! Integrity: the Arrow schema's metadata (kept in the Parquet footer) holds
//! `dynsim.catalog_hash`, BLAKE3 over the rows ([`Catalog::content_hash`]); a read recomputes
//! it, so a damaged byte that still decodes (a changed id, key or file name) is an error
//! instead of a silently different catalogue. A catalogue written before the hash existed (no
//! `dynsim.*` metadata at all) is read without the check and gets the hash at its next write.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, UInt32Array};
use arrow_schema::{DataType, Field, Schema};

use crate::error::StoreError;
use crate::keys::{KeyType, KeyValue, Keys, STANDARD_KEYS};

/// One catalogue row.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogRow {
    /// Recording id: 16 hex digits of BLAKE3(content hash, canonical keys).
    pub id: String,
    /// The keys.
    pub keys: Keys,
    /// `[trials, time, units]`.
    pub shape: [usize; 3],
    /// dtype in the source file.
    pub dtype: String,
    /// Content hash of the data (shared by recordings with identical data).
    pub hash: String,
    /// Recording file, relative to the store directory.
    pub file: String,
    /// Where the recording came from.
    pub source: String,
    /// When it was ingested (seconds since the Unix epoch).
    pub ingested_at: i64,
}

/// The Arrow schema metadata key of the catalogue's content hash.
const CATALOG_HASH_KEY: &str = "dynsim.catalog_hash";

/// What to do about a damaged catalogue.
const DAMAGED: &str = "; the catalogue is damaged: restore catalog.parquet from a backup, or create a new store and \
                       ingest the sources again (the recording files themselves may be intact)";

/// The recording id for a content hash and a set of keys.
pub fn recording_id(hash: &str, keys: &Keys) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"dynsim-id-v1\0");
    h.update(hash.as_bytes());
    h.update(b"\0");
    h.update(crate::keys::canonical_json(keys).as_bytes());
    h.finalize().to_hex()[..16].to_string()
}

/// All rows of a catalogue, in ingest order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    /// The rows.
    pub rows: Vec<CatalogRow>,
}

impl Catalog {
    /// Column types of the user keys (standard keys excluded), unified over all rows.
    pub fn user_key_types(&self) -> BTreeMap<String, KeyType> {
        let mut out: BTreeMap<String, KeyType> = BTreeMap::new();
        for r in &self.rows {
            for (k, v) in &r.keys {
                if crate::keys::standard_type(k).is_some() {
                    continue;
                }
                let t = KeyType::of(v);
                out.entry(k.clone()).and_modify(|u| *u = u.unify(t)).or_insert(t);
            }
        }
        out
    }

    /// Names of every key column present (standard ones first, then user keys).
    pub fn key_columns(&self) -> Vec<(String, KeyType)> {
        let mut cols: Vec<(String, KeyType)> = STANDARD_KEYS.iter().map(|(n, t)| (n.to_string(), *t)).collect();
        cols.extend(self.user_key_types());
        cols
    }

    /// Find rows by id or unique id prefix (at least 4 characters).
    pub fn resolve(&self, id: &str) -> Result<&CatalogRow, StoreError> {
        let unknown = |detail: String| StoreError::UnknownRecording { id: id.to_string(), detail };
        if let Some(r) = self.rows.iter().find(|r| r.id == id) {
            return Ok(r);
        }
        if id.len() < 4 {
            return Err(unknown("give at least 4 characters of the id (see `dynsim ls`)".into()));
        }
        let hits: Vec<&CatalogRow> = self.rows.iter().filter(|r| r.id.starts_with(id)).collect();
        match hits.len() {
            1 => Ok(hits[0]),
            0 => Err(unknown("no such recording in this store; list them with `dynsim ls`".into())),
            n => Err(unknown(format!("the prefix matches {n} recordings; give more characters"))),
        }
    }

    /// The catalogue as one Arrow record batch (the layout of `catalog.parquet`).
    pub fn to_record_batch(&self) -> Result<RecordBatch, StoreError> {
        let mut fields = vec![Field::new("id", DataType::Utf8, false)];
        let mut cols: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(self.rows.iter().map(|r| &r.id)))];
        for (name, ty) in self.key_columns() {
            let vals = self.rows.iter().map(|r| r.keys.get(&name));
            let (dt, col): (DataType, ArrayRef) = match ty {
                KeyType::Int => (
                    DataType::Int64,
                    Arc::new(
                        vals.map(|v| v.and_then(|v| if let KeyValue::Int(i) = v { Some(*i) } else { None }))
                            .collect::<Int64Array>(),
                    ),
                ),
                KeyType::Float => {
                    (DataType::Float64, Arc::new(vals.map(|v| v.and_then(KeyValue::as_f64)).collect::<Float64Array>()))
                }
                KeyType::Str => {
                    (DataType::Utf8, Arc::new(vals.map(|v| v.map(KeyValue::to_text)).collect::<StringArray>()))
                }
            };
            fields.push(Field::new(name, dt, true));
            cols.push(col);
        }
        for (i, name) in ["n_trials", "n_time", "n_units"].into_iter().enumerate() {
            fields.push(Field::new(name, DataType::UInt32, false));
            cols.push(Arc::new(UInt32Array::from_iter_values(self.rows.iter().map(|r| r.shape[i] as u32))));
        }
        type Getter = fn(&CatalogRow) -> &str;
        let strings: [(&str, Getter); 4] =
            [("dtype", |r| &r.dtype), ("hash", |r| &r.hash), ("file", |r| &r.file), ("source", |r| &r.source)];
        for (name, get) in strings {
            fields.push(Field::new(name, DataType::Utf8, false));
            cols.push(Arc::new(StringArray::from_iter_values(self.rows.iter().map(get))));
        }
        fields.push(Field::new("ingested_at", DataType::Int64, false));
        cols.push(Arc::new(Int64Array::from_iter_values(self.rows.iter().map(|r| r.ingested_at))));
        let meta = std::collections::HashMap::from([(CATALOG_HASH_KEY.to_string(), self.content_hash())]);
        RecordBatch::try_new(Arc::new(Schema::new_with_metadata(fields, meta)), cols)
            .map_err(StoreError::arrow("catalog"))
    }

    /// BLAKE3 (hex) over `b"dynsim-catalog-v1\0"` and every row in order: id, canonical keys
    /// JSON, shape (3 x u64 LE), dtype, hash, file, source (each string as its length, u64 LE,
    /// then its UTF-8 bytes), `ingested_at` (i64 LE).
    pub fn content_hash(&self) -> String {
        let mut h = blake3::Hasher::new();
        h.update(b"dynsim-catalog-v1\0");
        let text = |h: &mut blake3::Hasher, s: &str| {
            h.update(&(s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        };
        for r in &self.rows {
            text(&mut h, &r.id);
            text(&mut h, &crate::keys::canonical_json(&r.keys));
            for n in r.shape {
                h.update(&(n as u64).to_le_bytes());
            }
            for s in [&r.dtype, &r.hash, &r.file, &r.source] {
                text(&mut h, s);
            }
            h.update(&r.ingested_at.to_le_bytes());
        }
        h.finalize().to_hex().to_string()
    }

    /// Write the catalogue as Parquet to `path` (not atomically; the store renames).
    pub fn write_parquet(&self, path: &Path) -> Result<(), StoreError> {
        crate::table::write_table(path, &self.to_record_batch()?)
    }

    /// Read `catalog.parquet`.
    pub fn read_parquet(path: &Path) -> Result<Catalog, StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt { path: path.to_path_buf(), detail };
        let (schema, batches) = crate::table::read_table(path).map_err(|e| match e {
            StoreError::Parquet { detail, .. } => corrupt(format!("cannot read the catalogue: {detail}{DAMAGED}")),
            other => other,
        })?;
        let mut rows = Vec::new();
        for batch in &batches {
            rows.extend(rows_of(batch).map_err(|d| corrupt(format!("catalogue column {d}{DAMAGED}")))?);
        }
        let cat = Catalog { rows };
        let meta = schema.metadata();
        match meta.get(CATALOG_HASH_KEY) {
            Some(want) => {
                let got = cat.content_hash();
                if &got != want {
                    return Err(corrupt(format!(
                        "the catalogue's content hash {got} does not match the recorded {want}{DAMAGED}"
                    )));
                }
            }
            None if meta.keys().any(|k| k.starts_with("dynsim.")) => {
                return Err(corrupt(format!("the catalogue's {CATALOG_HASH_KEY} metadata is missing{DAMAGED}")));
            }
            None => {} // written before the hash existed
        }
        Ok(cat)
    }
}

fn str_col<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a StringArray, String> {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| format!("{name} is missing or not a string"))
}

fn rows_of(b: &RecordBatch) -> Result<Vec<CatalogRow>, String> {
    let id = str_col(b, "id")?;
    let (dtype, hash, file, source) =
        (str_col(b, "dtype")?, str_col(b, "hash")?, str_col(b, "file")?, str_col(b, "source")?);
    let dims: Vec<&UInt32Array> = ["n_trials", "n_time", "n_units"]
        .iter()
        .map(|n| {
            b.column_by_name(n)
                .and_then(|c| c.as_any().downcast_ref::<UInt32Array>())
                .ok_or_else(|| format!("{n} is missing or not u32"))
        })
        .collect::<Result<_, _>>()?;
    let at = b
        .column_by_name("ingested_at")
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
        .ok_or("ingested_at is missing or not i64")?;
    let reserved = crate::keys::RESERVED_COLUMNS;
    let key_cols: Vec<(&str, &ArrayRef)> = b
        .schema_ref()
        .fields()
        .iter()
        .zip(b.columns())
        .filter(|(f, _)| !reserved.contains(&f.name().as_str()))
        .map(|(f, c)| (f.name().as_str(), c))
        .collect();
    let mut rows = Vec::with_capacity(b.num_rows());
    for i in 0..b.num_rows() {
        let mut keys = Keys::new();
        for (name, col) in &key_cols {
            if col.is_null(i) {
                continue;
            }
            let v = if let Some(a) = col.as_any().downcast_ref::<Int64Array>() {
                KeyValue::Int(a.value(i))
            } else if let Some(a) = col.as_any().downcast_ref::<Float64Array>() {
                KeyValue::Float(a.value(i))
            } else if let Some(a) = col.as_any().downcast_ref::<StringArray>() {
                KeyValue::Str(a.value(i).to_string())
            } else {
                return Err(format!("{name} has an unsupported type"));
            };
            keys.insert(name.to_string(), v);
        }
        rows.push(CatalogRow {
            id: id.value(i).to_string(),
            keys,
            shape: [dims[0].value(i) as usize, dims[1].value(i) as usize, dims[2].value(i) as usize],
            dtype: dtype.value(i).to_string(),
            hash: hash.value(i).to_string(),
            file: file.value(i).to_string(),
            source: source.value(i).to_string(),
            ingested_at: at.value(i),
        });
    }
    Ok(rows)
}
