//! Typed cells of batches read back from the warehouse: a column by name as its Arrow type,
//! and a cell of it as an `Option` (null, or a column the file does not hold, is `None`).

use arrow::array::{
    Array, AsArray, Date32Array, Decimal128Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{Date32Type, Decimal128Type, Int64Type, TimestampMicrosecondType};

/// The columns of one batch, looked up by name.
#[derive(Debug, Clone, Copy)]
pub struct Cells<'a>(pub &'a RecordBatch);

impl<'a> Cells<'a> {
    /// A `Utf8` column.
    pub fn strings(&self, name: &str) -> Option<&'a StringArray> {
        self.0
            .column_by_name(name)
            .and_then(|c| c.as_string_opt::<i32>())
    }

    /// A text cell.
    pub fn text(&self, name: &str, i: usize) -> Option<&'a str> {
        self.strings(name)
            .filter(|a| a.is_valid(i))
            .map(|a| a.value(i))
    }

    /// A text cell as an owned string.
    pub fn string(&self, name: &str, i: usize) -> Option<String> {
        self.text(name, i).map(str::to_string)
    }

    /// A `Decimal128` cell (its unscaled value).
    pub fn decimal(&self, name: &str, i: usize) -> Option<i128> {
        let a: &Decimal128Array = self
            .0
            .column_by_name(name)?
            .as_primitive_opt::<Decimal128Type>()?;
        a.is_valid(i).then(|| a.value(i))
    }

    /// A `Timestamp(µs)` cell.
    pub fn micros(&self, name: &str, i: usize) -> Option<i64> {
        let a: &TimestampMicrosecondArray = self
            .0
            .column_by_name(name)?
            .as_primitive_opt::<TimestampMicrosecondType>()?;
        a.is_valid(i).then(|| a.value(i))
    }

    /// A `Date32` cell.
    pub fn day(&self, name: &str, i: usize) -> Option<i32> {
        let a: &Date32Array = self
            .0
            .column_by_name(name)?
            .as_primitive_opt::<Date32Type>()?;
        a.is_valid(i).then(|| a.value(i))
    }

    /// An `Int64` cell.
    pub fn int(&self, name: &str, i: usize) -> Option<i64> {
        let a: &Int64Array = self
            .0
            .column_by_name(name)?
            .as_primitive_opt::<Int64Type>()?;
        a.is_valid(i).then(|| a.value(i))
    }

    /// A `List(Utf8)` cell's items.
    pub fn list(&self, name: &str, i: usize) -> Vec<String> {
        let Some(l) = self
            .0
            .column_by_name(name)
            .and_then(|c| c.as_list_opt::<i32>())
            .filter(|l| l.is_valid(i))
        else {
            return Vec::new();
        };
        let items = l.value(i);
        let Some(s) = items.as_string_opt::<i32>() else {
            return Vec::new();
        };
        (0..s.len())
            .filter(|&j| s.is_valid(j))
            .map(|j| s.value(j).to_string())
            .collect()
    }

    /// A `Boolean` cell.
    pub fn flag(&self, name: &str, i: usize) -> Option<bool> {
        let a = self.0.column_by_name(name)?.as_boolean_opt()?;
        a.is_valid(i).then(|| a.value(i))
    }
}
