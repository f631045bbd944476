//! Parquet writer properties (zstd, statistics and page index, row-group size, `created_by`)
//! and encoding a batch into one file's bytes.

use arrow::array::RecordBatch;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;

use crate::contract::table::{LINEAGE_COLUMNS, TableDef};

/// `created_by` of every file: `maribank-etl <version>`.
pub fn created_by() -> String {
    format!("maribank-etl {}", crate::VERSION)
}

/// Default rows per row group.
pub const DEFAULT_ROW_GROUP_ROWS: usize = 128 * 1024;
/// Default zstd level.
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;

/// The warehouse's writer properties of `table`: zstd, page-level statistics (so the column
/// and offset indexes are written), an explicit row-group size, `created_by`, and the table's
/// column hints.
pub fn writer_properties(
    table: &TableDef,
    row_group_rows: usize,
    zstd_level: i32,
) -> WriterProperties {
    let mut b = WriterProperties::builder();
    // Unique per row: a dictionary only costs time there.
    for c in table.unique_columns {
        b = b.set_column_dictionary_enabled(ColumnPath::from(*c), false);
    }
    // A handful of distinct values, dictionary-encoded to a few bytes: a zstd context per
    // column chunk would cost more than it saves.
    let repetitive = table
        .repetitive_columns
        .iter()
        .chain(table.partition_by)
        .chain(&LINEAGE_COLUMNS);
    for c in repetitive {
        b = b.set_column_compression(ColumnPath::from(*c), Compression::UNCOMPRESSED);
    }
    b.set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(zstd_level).unwrap_or_default(),
        ))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_offset_index_disabled(false)
        .set_max_row_group_row_count(Some(row_group_rows.max(1)))
        .set_created_by(created_by())
        .build()
}

/// Encodes `batch` as one Parquet file in memory.
pub fn encode(batch: &RecordBatch, props: WriterProperties) -> Result<Vec<u8>, ParquetError> {
    let mut buf = Vec::with_capacity(batch.get_array_memory_size() / 4 + 1024);
    let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props))?;
    w.write(batch)?;
    w.close()?;
    Ok(buf)
}

/// Decodes a whole Parquet file.
pub fn decode(bytes: Bytes) -> Result<Vec<RecordBatch>, ParquetError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?
        .with_batch_size(64 * 1024)
        .build()?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(ParquetError::from)
}
