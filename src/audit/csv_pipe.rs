//! CSV encoded on a thread of its own while the query computes the next rows.
//!
//! Encoding a batch (its cells turned to text, formula-like ones quoted) took the thread that
//! also drives the query: at 1M rows `report access_review`'s sort merged its runs and the CSV
//! was encoded one after the other, 0.4–0.5 s with the second core half idle. Here each batch
//! goes to an encoder thread (at most [`IN_FLIGHT`] waiting), and its bytes come back to be
//! written, in order, by the caller's thread at its next batch or at the end. The bytes are
//! those one writer would give: the header before the first batch only.
use std::io::Write;
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

/// Batches handed to the encoder and not yet taken: what it holds beyond the batch it encodes.
const IN_FLIGHT: usize = 2;

/// A CSV output whose batches are encoded on another thread.
pub(super) struct CsvPipe<'w> {
    batches: Option<SyncSender<RecordBatch>>,
    encoded: Receiver<Result<Vec<u8>, ArrowError>>,
    encoder: Option<JoinHandle<()>>,
    w: &'w mut (dyn Write + Send),
}

impl<'w> CsvPipe<'w> {
    /// A pipe writing to `w`; `quote` turns a batch's formula-like cells into text (or leaves
    /// the batch as it is).
    pub(super) fn new(quote: fn(&RecordBatch) -> Result<RecordBatch, ArrowError>, w: &'w mut (dyn Write + Send)) -> CsvPipe<'w> {
        let (batches, to_encode) = sync_channel::<RecordBatch>(IN_FLIGHT);
        let (done, encoded) = channel();
        let encoder = std::thread::Builder::new()
            .name("csv encoder".into())
            .spawn(move || {
                let mut header = true;
                for batch in to_encode {
                    let bytes = quote(&batch).and_then(|batch| encode(&batch, header));
                    header = false;
                    let failed = bytes.is_err();
                    if done.send(bytes).is_err() || failed {
                        break;
                    }
                }
            })
            .expect("a thread can be started");
        CsvPipe {
            batches: Some(batches),
            encoded,
            encoder: Some(encoder),
            w,
        }
    }

    /// Hand `batch` to the encoder (waiting while [`IN_FLIGHT`] are), after writing what it
    /// has encoded so far.
    pub(super) fn write(&mut self, batch: RecordBatch) -> std::io::Result<()> {
        self.write_encoded(false)?;
        let sent = self.batches.as_ref().is_some_and(|batches| batches.send(batch).is_ok());
        if !sent {
            // The encoder stopped on an error: it is among what it encoded.
            self.write_encoded(true)?;
        }
        Ok(())
    }

    /// Write what is left once every batch is encoded; returns the writer.
    pub(super) fn finish(mut self) -> std::io::Result<&'w mut (dyn Write + Send)> {
        self.batches = None;
        self.write_encoded(true)?;
        if let Some(encoder) = self.encoder.take() {
            encoder.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        }
        Ok(self.w)
    }

    /// Write the encoded batches that are ready, or with `wait`, every one until the encoder
    /// stops.
    fn write_encoded(&mut self, wait: bool) -> std::io::Result<()> {
        loop {
            let next = if wait {
                self.encoded.recv().ok()
            } else {
                self.encoded.try_recv().ok()
            };
            match next {
                Some(Ok(bytes)) => self.w.write_all(&bytes)?,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(()),
            }
        }
    }
}

/// `batch` as CSV rows, after a header line when `header`.
fn encode(batch: &RecordBatch, header: bool) -> Result<Vec<u8>, ArrowError> {
    let mut writer = arrow::csv::WriterBuilder::new().with_header(header).build(Vec::new());
    writer.write(batch)?;
    Ok(writer.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, StringArray};

    use super::*;

    fn batch(from: i64, rows: i64) -> RecordBatch {
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(from..from + rows));
        let names: ArrayRef = Arc::new(StringArray::from_iter(
            (from..from + rows).map(|i| (i % 3 != 0).then(|| format!("n,{i}"))),
        ));
        RecordBatch::try_from_iter([("id", ids), ("name", names)]).unwrap()
    }

    #[test]
    fn the_bytes_are_one_writers_in_the_batches_order() {
        let batches: Vec<RecordBatch> = (0..40).map(|b| batch(b * 97, 97)).collect();
        let mut one = arrow::csv::WriterBuilder::new().with_header(true).build(Vec::new());
        for b in &batches {
            one.write(b).unwrap();
        }
        let mut out = Vec::new();
        let mut pipe = CsvPipe::new(|b| Ok(b.clone()), &mut out);
        for b in batches {
            pipe.write(b).unwrap();
        }
        pipe.finish().unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(one.into_inner()).unwrap());
    }

    #[test]
    fn an_encoding_error_is_returned_and_nothing_after_it_is_written() {
        let mut out = Vec::new();
        let mut pipe = CsvPipe::new(
            |b| match b.num_rows() {
                5 => Err(ArrowError::ComputeError("cell 5".into())),
                _ => Ok(b.clone()),
            },
            &mut out,
        );
        let mut failed = None;
        for rows in [3, 4, 5, 6, 7, 8] {
            if let Err(e) = pipe.write(batch(0, rows)) {
                failed = Some(e);
                break;
            }
        }
        let failed = failed.map_or_else(|| pipe.finish().err(), Some).expect("the error comes back");
        assert!(failed.to_string().contains("cell 5"), "{failed}");
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text.lines().count(),
            1 + 3 + 4,
            "the header and the batches before the error: {text}"
        );
    }
}
