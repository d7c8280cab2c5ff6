//! Limits on an auditor's session: ad-hoc SQL comes from people, and one statement must not take
//! the process down. `SELECT length(repeat('x', 2000000000))` asked for a 2 GB string and the
//! process aborted; now it fails as a query error.
//!
//! - The session's memory pool is bounded ([`session_memory_limit`]): joins, sorts and
//!   aggregations that would pass it fail with "resources exhausted" (or spill, where DataFusion
//!   can).
//! - Functions that build a value of a size the query chooses (`repeat`, `lpad`, `rpad`) check
//!   that size first: one value may be at most [`MAX_VALUE_BYTES`], one batch of them at most
//!   [`MAX_BATCH_BYTES`].
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::{plan_err, Result};
use datafusion::logical_expr::{ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature};
use datafusion::prelude::SessionContext;

/// The largest value one call may build.
pub const MAX_VALUE_BYTES: u64 = 64 << 20;
/// The most one batch of calls may build.
pub const MAX_BATCH_BYTES: u64 = 512 << 20;

/// The memory pool of an auditor's session: half of the process's budget (`--memory-limit`,
/// the config's `memory_limit`, else what the container or machine has), at least 128 MiB. Sorts and aggregations that reach it spill to disk beside the store.
pub fn session_memory_limit() -> usize {
    (crate::memory::limit() / 2).max(128 << 20) as usize
}

/// How a function's arguments say how large its results will be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// `repeat(s, n)`: `len(s) × n` bytes.
    Repeat,
    /// `lpad(s, n [, fill])`, `rpad(…)`: `n` characters, up to 4 bytes each.
    Pad,
}

/// A built-in function that checks the size of what it is asked to build, then runs.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: ScalarUDF,
    growth: Growth,
}

impl Bounded {
    /// The bytes the call would build, per row, summed; an error naming the function when one
    /// value or the batch is over the limit.
    fn check(&self, args: &[ColumnarValue]) -> Result<()> {
        if args.len() < 2 {
            return Ok(());
        }
        let arrays: Vec<ArrayRef> = ColumnarValue::values_to_arrays(args)?;
        let counts = arrow::compute::cast(&arrays[1], &DataType::Int64)?;
        let counts = counts.as_primitive::<Int64Type>();
        let lengths: Option<ArrayRef> = match self.growth {
            Growth::Repeat => Some(arrow::compute::kernels::length::length(&arrow::compute::cast(
                &arrays[0],
                &DataType::LargeUtf8,
            )?)?),
            Growth::Pad => None,
        };
        let mut total: u64 = 0;
        for i in 0..counts.len() {
            if counts.is_null(i) {
                continue;
            }
            let n = counts.value(i).max(0) as u64;
            let bytes = match (&lengths, self.growth) {
                (Some(l), Growth::Repeat) => {
                    let l = l.as_primitive::<Int64Type>();
                    if l.is_null(i) {
                        0
                    } else {
                        (l.value(i).max(0) as u64).saturating_mul(n)
                    }
                }
                _ => n.saturating_mul(4),
            };
            if bytes > MAX_VALUE_BYTES {
                return plan_err!(
                    "{}: a value of {bytes} bytes was asked for; one value may be at most {} MiB",
                    self.inner.name(),
                    MAX_VALUE_BYTES >> 20
                );
            }
            total = total.saturating_add(bytes);
            if total > MAX_BATCH_BYTES {
                return plan_err!(
                    "{}: more than {} MiB of values were asked for in one batch",
                    self.inner.name(),
                    MAX_BATCH_BYTES >> 20
                );
            }
        }
        Ok(())
    }
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.check(&args.args)?;
        self.inner.invoke_with_args(args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

/// Replace the session's size-choosing functions with their bounded forms.
pub fn register_bounded_functions(ctx: &SessionContext) {
    let bounded = |f: Arc<ScalarUDF>, growth| {
        ScalarUDF::new_from_impl(Bounded {
            inner: f.as_ref().clone(),
            growth,
        })
    };
    ctx.register_udf(bounded(datafusion::functions::string::repeat(), Growth::Repeat));
    ctx.register_udf(bounded(datafusion::functions::unicode::lpad(), Growth::Pad));
    ctx.register_udf(bounded(datafusion::functions::unicode::rpad(), Growth::Pad));
}
