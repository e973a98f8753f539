//! Arrow IPC streams: how the engine's repartition topics carry rows between processes
//! (exact for every type, many rows per message).

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

/// Encodes `batch` as an Arrow IPC stream (its schema, then its rows): exact for every
/// type, and one message for many rows.
pub fn encode_rows(batch: &RecordBatch) -> Result<Vec<u8>, arrow::error::ArrowError> {
    let mut writer = arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema())?;
    writer.write(batch)?;
    writer.into_inner()
}

/// Decodes [`encode_rows`] into batches of `schema` (the reader's declared columns, which
/// the writer's match by position and type).
pub fn decode_rows(payload: &[u8], schema: &SchemaRef) -> Result<Vec<RecordBatch>, String> {
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(payload), None)
        .map_err(|e| format!("not an Arrow IPC stream: {e}"))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| format!("bad Arrow IPC batch: {e}"))?;
        let batch = RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
            .map_err(|e| format!("rows do not match the declared columns: {e}"))?;
        out.push(batch);
    }
    Ok(out)
}
