//! Confusion matrix, per-label precision/recall/F1 and macro-F1.

#[derive(Debug, Clone)]
pub struct ConfusionMatrix {
    pub labels: Vec<String>,
    /// `cells[truth][predicted]`.
    pub cells: Vec<Vec<usize>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

impl ConfusionMatrix {
    pub fn new(labels: &[String]) -> ConfusionMatrix {
        ConfusionMatrix {
            labels: labels.to_vec(),
            cells: vec![vec![0; labels.len()]; labels.len()],
        }
    }

    pub fn add(&mut self, truth: usize, predicted: usize) {
        self.cells[truth][predicted] += 1;
    }

    pub fn total(&self) -> usize {
        self.cells.iter().flatten().sum()
    }

    pub fn accuracy(&self) -> f64 {
        let right: usize = (0..self.cells.len()).map(|i| self.cells[i][i]).sum();
        ratio(right, self.total())
    }

    pub fn label(&self, i: usize) -> LabelScores {
        let tp = self.cells[i][i];
        let predicted: usize = self.cells.iter().map(|row| row[i]).sum();
        let support: usize = self.cells[i].iter().sum();
        let precision = ratio(tp, predicted);
        let recall = ratio(tp, support);
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        LabelScores {
            precision,
            recall,
            f1,
            support,
        }
    }

    /// Mean F1 over the labels that occur.
    pub fn macro_f1(&self) -> f64 {
        let present: Vec<f64> = (0..self.labels.len())
            .map(|i| self.label(i))
            .filter(|s| s.support > 0)
            .map(|s| s.f1)
            .collect();
        if present.is_empty() {
            return 0.0;
        }
        present.iter().sum::<f64>() / present.len() as f64
    }

    /// A markdown table: rows are the truth, columns the prediction.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from("| truth \\ predicted |");
        for l in &self.labels {
            out.push_str(&format!(" {l} |"));
        }
        out.push_str("\n|---|");
        out.push_str(&"---:|".repeat(self.labels.len()));
        out.push('\n');
        for (l, row) in self.labels.iter().zip(&self.cells) {
            out.push_str(&format!("| **{l}** |"));
            for c in row {
                out.push_str(&format!(" {c} |"));
            }
            out.push('\n');
        }
        out
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_by_hand() {
        let mut m = ConfusionMatrix::new(&["a".into(), "b".into()]);
        // a: 3 right, 1 called b; b: 2 right.
        for _ in 0..3 {
            m.add(0, 0);
        }
        m.add(0, 1);
        m.add(1, 1);
        m.add(1, 1);
        let a = m.label(0);
        assert_eq!((a.precision, a.recall, a.support), (1.0, 0.75, 4));
        let b = m.label(1);
        assert!((b.precision - 2.0 / 3.0).abs() < 1e-12 && b.recall == 1.0);
        let expected = (2.0 * 0.75 / 1.75 + 2.0 * (2.0 / 3.0) / (5.0 / 3.0)) / 2.0;
        assert!((m.macro_f1() - expected).abs() < 1e-12);
        assert!((m.accuracy() - 5.0 / 6.0).abs() < 1e-12);
        assert!(m.to_markdown().contains("| **a** | 3 | 1 |"));
    }
}
