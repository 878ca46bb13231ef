//! Budgets of template rendering (`TYCHO_TEMPLATE_*`).
//!
//! Read from the process environment by [`super::var`] and friends only; the rules that
//! use them are in `crate::limits` and `crate::render`.
//!
//! | variable | default | what |
//! | --- | --- | --- |
//! | `TYCHO_TEMPLATE_FUEL` | 2,000,000 | instructions one template evaluation may run |
//! | `TYCHO_TEMPLATE_TOTAL_FUEL` | 20,000,000 | instructions all templates of one compile or spec may run |
//! | `TYCHO_TEMPLATE_OUTPUT_LIMIT` | 8 MiB | bytes one template evaluation may write |
//! | `TYCHO_TEMPLATE_MEMORY_LIMIT` | 16 MiB | bytes of strings and lists one evaluation may build |
//!
//! A value that is not a positive whole number (`_` separators allowed) means the default.

/// The template budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateBudgets {
    /// Instructions of one template evaluation.
    pub fuel: u64,
    /// Instructions of all template evaluations of one compile or one spec.
    pub total_fuel: u64,
    /// Output bytes of one template evaluation.
    pub output: usize,
    /// Bytes of strings and sequences built by one evaluation.
    pub memory: usize,
}

impl Default for TemplateBudgets {
    fn default() -> Self {
        TemplateBudgets {
            fuel: 2_000_000,
            total_fuel: 20_000_000,
            output: 8 << 20,
            memory: 16 << 20,
        }
    }
}

/// A positive whole number from `text` (`_` separators allowed), else `default`.
fn number(text: Option<String>, default: u64) -> u64 {
    text.and_then(|v| v.trim().replace('_', "").parse::<u64>().ok())
        .filter(|v| *v > 0)
        .unwrap_or(default)
}

impl TemplateBudgets {
    /// The budgets of the process environment (defaults for unset or invalid variables).
    pub fn from_env() -> TemplateBudgets {
        let d = TemplateBudgets::default();
        TemplateBudgets {
            fuel: number(super::var("TYCHO_TEMPLATE_FUEL"), d.fuel),
            total_fuel: number(super::var("TYCHO_TEMPLATE_TOTAL_FUEL"), d.total_fuel),
            output: number(super::var("TYCHO_TEMPLATE_OUTPUT_LIMIT"), d.output as u64) as usize,
            memory: number(super::var("TYCHO_TEMPLATE_MEMORY_LIMIT"), d.memory as u64) as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_fall_back_to_the_default() {
        assert_eq!(number(Some("1_000".into()), 5), 1000);
        assert_eq!(number(Some("0".into()), 5), 5);
        assert_eq!(number(Some("-3".into()), 5), 5);
        assert_eq!(number(Some("lots".into()), 5), 5);
        assert_eq!(number(None, 5), 5);
    }
}
