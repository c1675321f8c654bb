//! Turning an encoder's token states into one sentence vector. Pure.

/// Mean of the token states the attention mask keeps: what sentence
/// transformers (all-MiniLM-L6-v2 among them) were trained with. `hidden`
/// is `[batch, seq, dim]`, row-major; `mask` is `[batch, seq]`.
pub fn mean_pool(
    hidden: &[f32],
    mask: &[i64],
    batch: usize,
    seq: usize,
    dim: usize,
) -> Vec<Vec<f32>> {
    (0..batch)
        .map(|b| {
            let mut sum = vec![0f32; dim];
            let mut kept = 0f32;
            for t in 0..seq {
                if mask[b * seq + t] == 0 {
                    continue;
                }
                kept += 1.0;
                let row = &hidden[(b * seq + t) * dim..(b * seq + t + 1) * dim];
                for (s, h) in sum.iter_mut().zip(row) {
                    *s += h;
                }
            }
            let scale = 1.0 / kept.max(1.0);
            sum.iter_mut().for_each(|s| *s *= scale);
            sum
        })
        .collect()
}

/// Scale to unit length so that a dot product is a cosine similarity.
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 1e-12 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent sums let the compiler use vector lanes (a single
    // running sum has to be added in order).
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Softmax, stable against large logits.
pub fn softmax(logits: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0.0;
    for l in logits.iter_mut() {
        *l = (*l - max).exp();
        total += *l;
    }
    if total > 0.0 {
        logits.iter_mut().for_each(|l| *l /= total);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_pool_ignores_padding() {
        // Two sequences of length 3, dim 2; the second has one pad token.
        let hidden = [1., 2., 3., 4., 5., 6., 10., 10., 20., 20., 99., 99.];
        let mask = [1, 1, 1, 1, 1, 0];
        let pooled = mean_pool(&hidden, &mask, 2, 3, 2);
        assert_eq!(pooled, vec![vec![3., 4.], vec![15., 15.]]);
    }

    #[test]
    fn dot_matches_the_plain_sum() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.1).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - plain).abs() < 1e-3);
        assert_eq!(dot(&[], &[]), 0.0);
    }

    #[test]
    fn normalize_and_softmax() {
        let mut v = [3., 4.];
        l2_normalize(&mut v);
        assert_eq!(v, [0.6, 0.8]);
        let mut zero = [0., 0.];
        l2_normalize(&mut zero);
        assert_eq!(zero, [0., 0.]);
        let mut l = [1000., 1000.];
        softmax(&mut l);
        assert_eq!(l, [0.5, 0.5]);
    }
}
