//! Per-label thresholds for abstention, chosen on predictions made for
//! sources the scoring head was not trained on. Pure.

/// One out-of-source prediction: the true label and the head's
/// probabilities.
pub struct Scored {
    pub truth: usize,
    pub probabilities: Vec<f32>,
}

/// Thresholds a label may get, lowest first.
pub const GRID: [f32; 12] = [
    0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85,
];

/// Per label, the lowest threshold in [`GRID`] at which the prompts given
/// that label (top label, probability at or above the threshold) are right
/// at least `precision` of the time, over at least `min_support` of them;
/// the highest grid value when none is. Why precision: an uncertain label
/// falls through to the router's next rule, which costs little, while a
/// wrong label sends the prompt to a model chosen for another task.
pub fn thresholds(
    scored: &[Scored],
    classes: usize,
    precision: f64,
    min_support: usize,
) -> Vec<f32> {
    (0..classes)
        .map(|k| {
            GRID.iter()
                .copied()
                .find(|&t| {
                    let (right, given) = given_label(scored, k, t);
                    given >= min_support && right as f64 >= precision * given as f64
                })
                .unwrap_or(GRID[GRID.len() - 1])
        })
        .collect()
}

/// How a set of thresholds does: the share of prompts given a label
/// (coverage) and the share of those that are right (precision).
pub fn abstention(scored: &[Scored], thresholds: &[f32]) -> (f64, f64) {
    let mut given = 0usize;
    let mut right = 0usize;
    for s in scored {
        let (top, p) = top(&s.probabilities);
        if p >= thresholds.get(top).copied().unwrap_or(0.5) {
            given += 1;
            right += usize::from(top == s.truth);
        }
    }
    let share = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    (share(given, scored.len()), share(right, given))
}

fn given_label(scored: &[Scored], label: usize, threshold: f32) -> (usize, usize) {
    let mut right = 0;
    let mut given = 0;
    for s in scored {
        let (top, p) = top(&s.probabilities);
        if top == label && p >= threshold {
            given += 1;
            right += usize::from(s.truth == label);
        }
    }
    (right, given)
}

fn top(p: &[f32]) -> (usize, f32) {
    p.iter().copied().enumerate().fold(
        (0, f32::MIN),
        |best, (i, x)| if x > best.1 { (i, x) } else { best },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(truth: usize, p0: f32) -> Scored {
        Scored {
            truth,
            probabilities: vec![p0, 1.0 - p0],
        }
    }

    #[test]
    fn the_lowest_threshold_that_is_precise_enough() {
        // Label 0 is right when confident (p0 >= 0.7), wrong below.
        let mut scored = vec![];
        for _ in 0..9 {
            scored.push(s(0, 0.9));
        }
        scored.push(s(1, 0.72));
        for _ in 0..5 {
            scored.push(s(1, 0.6));
        }
        // Label 1 (p0 < 0.5) is always right.
        for _ in 0..10 {
            scored.push(s(1, 0.2));
        }
        let t = thresholds(&scored, 2, 0.9, 5);
        assert_eq!(t[0], 0.65, "{t:?}");
        assert_eq!(t[1], 0.30);
        let (coverage, precision) = abstention(&scored, &t);
        assert!((coverage - 20.0 / 25.0).abs() < 1e-9);
        assert!((precision - 19.0 / 20.0).abs() < 1e-9);
        // Never precise enough: the highest grid value.
        let wrong: Vec<Scored> = (0..10).map(|_| s(1, 0.99)).collect();
        assert_eq!(thresholds(&wrong, 2, 0.9, 5)[0], 0.85);
    }
}
