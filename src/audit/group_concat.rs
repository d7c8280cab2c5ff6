//! `string_agg` (SQLite's `group_concat`) with a grouped accumulator that keeps every group's
//! values in one arena. DataFusion's keeps a `String` per group and grows it value by value; at
//! 1M users, `app_access`'s `via_groups` (4.9M memberships into 992k groups) spent most of its
//! 3.1 s of CPU in `realloc`, `malloc` and the allocator's locks. Everything else (its
//! signature, types, state, the ordered and distinct forms, the ungrouped accumulator) is
//! DataFusion's own: only the grouped accumulator without ORDER BY or DISTINCT is replaced, and
//! it joins a group's values in the order they arrive, as DataFusion's does.
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, LargeStringArray};
use arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, AggregateFunctionSimplification, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator, ReversedUDAF, Signature,
};
use datafusion::physical_expr::expressions::Literal;

/// DataFusion's `string_agg` (aliased `group_concat`) with [`ArenaGroups`] as its grouped
/// accumulator.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct StringAgg {
    inner: Arc<AggregateUDF>,
    aliases: Vec<String>,
}

/// The function to register: named `string_agg`, aliased `group_concat`.
pub fn string_agg() -> AggregateUDF {
    AggregateUDF::new_from_impl(StringAgg {
        inner: datafusion::functions_aggregate::string_agg::string_agg_udaf(),
        aliases: vec!["group_concat".to_string()],
    })
}

impl AggregateUDFImpl for StringAgg {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn aliases(&self) -> &[String] {
        &self.aliases
    }
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }
    fn is_nullable(&self) -> bool {
        self.inner.is_nullable()
    }
    fn accumulator(&self, acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.inner.accumulator(acc_args)
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }
    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner.groups_accumulator_supported(args)
    }
    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        if args.is_distinct || !args.order_bys.is_empty() {
            return self.inner.create_groups_accumulator(args);
        }
        Ok(Box::new(ArenaGroups::new(delimiter(&args)?)))
    }
    fn with_beneficial_ordering(self: Arc<Self>, beneficial_ordering: bool) -> Result<Option<Arc<dyn AggregateUDFImpl>>> {
        self.inner.inner().clone().with_beneficial_ordering(beneficial_ordering)
    }
    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner.order_sensitivity()
    }
    fn simplify(&self) -> Option<AggregateFunctionSimplification> {
        self.inner.simplify()
    }
    fn reverse_expr(&self) -> ReversedUDAF {
        self.inner.reverse_udf()
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }
    fn default_value(&self, data_type: &DataType) -> Result<ScalarValue> {
        self.inner.default_value(data_type)
    }
    fn supports_null_handling_clause(&self) -> bool {
        self.inner.supports_null_handling_clause()
    }
    fn supports_within_group_clause(&self) -> bool {
        self.inner.supports_within_group_clause()
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

/// The delimiter: the second argument, a string literal (NULL: none), as `string_agg` takes it.
fn delimiter(args: &AccumulatorArgs) -> Result<String> {
    let literal = args.exprs.get(1).and_then(|e| e.downcast_ref::<Literal>());
    match literal.map(|l| l.value()) {
        Some(v) if v.is_null() => Ok(String::new()),
        Some(v) => match v.try_as_str() {
            Some(s) => Ok(s.unwrap_or("").to_string()),
            None => Err(DataFusionError::NotImplemented(format!(
                "string_agg's delimiter must be a string, not {v}"
            ))),
        },
        None => Err(DataFusionError::NotImplemented(
            "string_agg's delimiter must be a string literal".into(),
        )),
    }
}

const NONE: u32 = u32::MAX;

/// One value of a group: where it lies in the arena, and the group's next value.
struct Piece {
    start: usize,
    len: u32,
    next: u32,
}

/// Every value of every group appended to one buffer as it arrives, each group a chain of
/// pieces through it; a group's string is built once, when it is emitted.
struct ArenaGroups {
    delimiter: String,
    bytes: Vec<u8>,
    pieces: Vec<Piece>,
    /// Each group's first and last piece (NONE: no value yet).
    heads: Vec<u32>,
    tails: Vec<u32>,
}

impl std::fmt::Debug for ArenaGroups {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_struct("ArenaGroups")
            .field("groups", &self.heads.len())
            .field("pieces", &self.pieces.len())
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl ArenaGroups {
    fn new(delimiter: String) -> Self {
        ArenaGroups {
            delimiter,
            bytes: Vec::new(),
            pieces: Vec::new(),
            heads: Vec::new(),
            tails: Vec::new(),
        }
    }

    fn push(&mut self, group: usize, value: &[u8]) -> Result<()> {
        let (Ok(index), Ok(len)) = (u32::try_from(self.pieces.len()), u32::try_from(value.len())) else {
            return Err(DataFusionError::ResourcesExhausted(
                "string_agg: more than 4 billion values or a value over 4 GiB".into(),
            ));
        };
        if index == NONE {
            return Err(DataFusionError::ResourcesExhausted("string_agg: more than 4 billion values".into()));
        }
        self.pieces.push(Piece {
            start: self.bytes.len(),
            len,
            next: NONE,
        });
        self.bytes.extend_from_slice(value);
        match self.tails[group] {
            NONE => self.heads[group] = index,
            tail => self.pieces[tail as usize].next = index,
        }
        self.tails[group] = index;
        Ok(())
    }

    fn append<'a>(&mut self, values: impl Iterator<Item = Option<&'a str>>, groups: &[usize], filter: Option<&BooleanArray>) -> Result<()> {
        for (row, (value, &group)) in values.zip(groups).enumerate() {
            let kept = filter.is_none_or(|f| f.is_valid(row) && f.value(row));
            if let Some(value) = value.filter(|_| kept) {
                self.push(group, value.as_bytes())?;
            }
        }
        Ok(())
    }

    /// The bytes of each value of the group whose first piece is `head`, in order.
    fn values_of(&self, head: u32) -> impl Iterator<Item = &[u8]> {
        std::iter::successors(Some(head).filter(|h| *h != NONE), |at| {
            Some(self.pieces[*at as usize].next).filter(|n| *n != NONE)
        })
        .map(|at| &self.pieces[at as usize])
        .map(|piece| &self.bytes[piece.start..piece.start + piece.len as usize])
    }
}

impl GroupsAccumulator for ArenaGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.heads.resize(total_num_groups, NONE);
        self.tails.resize(total_num_groups, NONE);
        let array = &values[0];
        match array.data_type() {
            DataType::Utf8 => self.append(array.as_string::<i32>().iter(), group_indices, opt_filter),
            DataType::LargeUtf8 => self.append(array.as_string::<i64>().iter(), group_indices, opt_filter),
            DataType::Utf8View => self.append(array.as_string_view().iter(), group_indices, opt_filter),
            DataType::Null => Ok(()),
            other => Err(DataFusionError::Internal(format!("string_agg of {other}"))),
        }
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let emitted = match emit_to {
            EmitTo::All => self.heads.len(),
            EmitTo::First(n) => n.min(self.heads.len()),
        };
        // Built as bytes and offsets, its UTF-8 checked once as a whole (every piece was a whole
        // string, and so is every joined value).
        let (mut values, mut offsets) = (Vec::<u8>::new(), Vec::<i64>::with_capacity(emitted + 1));
        let mut nulls = arrow::array::builder::NullBufferBuilder::new(emitted);
        offsets.push(0);
        for &head in &self.heads[..emitted] {
            nulls.append(head != NONE);
            for (i, value) in self.values_of(head).enumerate() {
                if i > 0 {
                    values.extend_from_slice(self.delimiter.as_bytes());
                }
                values.extend_from_slice(value);
            }
            offsets
                .push(i64::try_from(values.len()).map_err(|_| DataFusionError::ResourcesExhausted("string_agg: over 2^63 bytes".into()))?);
        }
        let out = LargeStringArray::try_new(
            arrow::buffer::OffsetBuffer::new(offsets.into()),
            arrow::buffer::Buffer::from_vec(values),
            nulls.finish(),
        )?;
        if emitted == self.heads.len() {
            *self = ArenaGroups::new(std::mem::take(&mut self.delimiter));
        } else {
            // The groups left keep their values in a new arena, renumbered from 0.
            let mut rest = ArenaGroups::new(self.delimiter.clone());
            rest.heads.resize(self.heads.len() - emitted, NONE);
            rest.tails.resize(self.heads.len() - emitted, NONE);
            for (group, &head) in self.heads[emitted..].iter().enumerate() {
                for value in self.values_of(head) {
                    rest.push(group, value)?;
                }
            }
            *self = rest;
        }
        Ok(Arc::new(out))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.evaluate(emit_to)?])
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        // A state is a group's values joined already: joined again with the delimiter.
        self.update_batch(values, group_indices, None, total_num_groups)
    }

    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let mut state = arrow::compute::cast(&values[0], &DataType::LargeUtf8)?;
        if let Some(filter) = opt_filter {
            let dropped = arrow::compute::not(&arrow::compute::prep_null_mask_filter(filter))?;
            state = arrow::compute::nullif(&state, &dropped)?;
        }
        Ok(vec![state])
    }

    fn size(&self) -> usize {
        self.bytes.capacity()
            + self.pieces.capacity() * std::mem::size_of::<Piece>()
            + (self.heads.capacity() + self.tails.capacity()) * std::mem::size_of::<u32>()
            + self.delimiter.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;

    fn strings(values: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(values.to_vec()))
    }

    fn texts(array: &ArrayRef) -> Vec<Option<String>> {
        let a = array.as_any().downcast_ref::<LargeStringArray>().unwrap();
        a.iter().map(|v| v.map(str::to_string)).collect()
    }

    #[test]
    fn joins_each_group_in_arrival_order_skipping_nulls_and_filtered_rows() {
        let mut acc = ArenaGroups::new(", ".into());
        acc.update_batch(&[strings(&[Some("a"), Some("b"), None, Some("c")])], &[0, 1, 0, 0], None, 3)
            .unwrap();
        let filter = BooleanArray::from(vec![Some(true), Some(false), None]);
        acc.update_batch(&[strings(&[Some("d"), Some("x"), Some("y")])], &[1, 0, 0], Some(&filter), 3)
            .unwrap();
        let out = acc.evaluate(EmitTo::All).unwrap();
        assert_eq!(texts(&out), vec![Some("a, c".into()), Some("b, d".into()), None]);
        assert_eq!(acc.heads.len(), 0, "emptied");
    }

    #[test]
    fn emitting_the_first_groups_keeps_the_rest_renumbered() {
        let mut acc = ArenaGroups::new("|".into());
        acc.update_batch(&[strings(&[Some("a"), Some("b"), Some("c"), Some("d")])], &[0, 1, 2, 1], None, 3)
            .unwrap();
        assert_eq!(texts(&acc.evaluate(EmitTo::First(1)).unwrap()), vec![Some("a".into())]);
        acc.update_batch(&[strings(&[Some("e")])], &[0], None, 2).unwrap();
        assert_eq!(
            texts(&acc.state(EmitTo::All).unwrap()[0]),
            vec![Some("b|d|e".into()), Some("c".into())]
        );
    }

    #[test]
    fn merging_states_joins_them_with_the_delimiter() {
        let mut acc = ArenaGroups::new(", ".into());
        let states = acc.convert_to_state(&[strings(&[Some("a"), Some("b"), Some("c")])], None).unwrap();
        acc.merge_batch(&states, &[0, 0, 1], 2).unwrap();
        let joined: ArrayRef = Arc::new(LargeStringArray::from(vec![Some("x, y"), None]));
        acc.merge_batch(&[joined], &[1, 0], 2).unwrap();
        assert_eq!(
            texts(&acc.evaluate(EmitTo::All).unwrap()),
            vec![Some("a, b".into()), Some("c, x, y".into())]
        );
    }
}
