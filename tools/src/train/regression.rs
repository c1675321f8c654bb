//! Multinomial logistic regression (a linear softmax head) by full-batch
//! Adam with L2 regularisation and class-balanced loss. A few thousand
//! 384-dimensional examples train in seconds; nothing here needs a
//! framework.

#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub epochs: usize,
    pub learning_rate: f32,
    pub l2: f32,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            epochs: 400,
            learning_rate: 0.05,
            l2: 1e-3,
        }
    }
}

/// Returns `(weights [classes × dim], bias [classes])`.
pub fn train_softmax(
    features: &[Vec<f32>],
    labels: &[usize],
    classes: usize,
    options: &TrainOptions,
) -> (Vec<f32>, Vec<f32>) {
    let dim = features.first().map_or(0, Vec::len);
    let n = features.len().max(1);
    // Balanced: each class contributes equally whatever its size.
    let mut counts = vec![0usize; classes];
    for &y in labels {
        counts[y] += 1;
    }
    let class_weight: Vec<f32> = counts
        .iter()
        .map(|&c| {
            if c == 0 {
                0.0
            } else {
                n as f32 / (classes as f32 * c as f32)
            }
        })
        .collect();
    let mut w = vec![0f32; classes * dim];
    let mut b = vec![0f32; classes];
    let mut adam = Adam::new(w.len() + b.len());
    let mut probs = vec![0f32; classes];
    for _ in 0..options.epochs {
        let mut gw = vec![0f32; w.len()];
        let mut gb = vec![0f32; classes];
        for (x, &y) in features.iter().zip(labels) {
            for (k, p) in probs.iter_mut().enumerate() {
                *p = b[k] + dot(&w[k * dim..(k + 1) * dim], x);
            }
            softmax(&mut probs);
            let cw = class_weight[y] / n as f32;
            for k in 0..classes {
                let g = (probs[k] - if k == y { 1.0 } else { 0.0 }) * cw;
                gb[k] += g;
                for (gwi, xi) in gw[k * dim..(k + 1) * dim].iter_mut().zip(x) {
                    *gwi += g * xi;
                }
            }
        }
        for (g, wi) in gw.iter_mut().zip(&w) {
            *g += options.l2 * wi;
        }
        let mut params: Vec<f32> = w.iter().chain(&b).copied().collect();
        let grads: Vec<f32> = gw.into_iter().chain(gb).collect();
        adam.step(&mut params, &grads, options.learning_rate);
        let (pw, pb) = params.split_at(w.len());
        w.copy_from_slice(pw);
        b.copy_from_slice(pb);
    }
    (w, b)
}

/// The index of the highest score.
pub fn argmax(scores: &[f32]) -> usize {
    scores
        .iter()
        .enumerate()
        .fold(
            (0, f32::MIN),
            |best, (i, &s)| if s > best.1 { (i, s) } else { best },
        )
        .0
}

/// Linear scores of one example.
pub fn scores(w: &[f32], b: &[f32], x: &[f32]) -> Vec<f32> {
    let dim = x.len();
    b.iter()
        .enumerate()
        .map(|(k, bk)| bk + dot(&w[k * dim..(k + 1) * dim], x))
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn softmax(v: &mut [f32]) {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0.0;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        total += *x;
    }
    v.iter_mut().for_each(|x| *x /= total);
}

struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl Adam {
    fn new(n: usize) -> Adam {
        Adam {
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    fn step(&mut self, params: &mut [f32], grads: &[f32], lr: f32) {
        const B1: f32 = 0.9;
        const B2: f32 = 0.999;
        self.t += 1;
        let c1 = 1.0 - B1.powi(self.t);
        let c2 = 1.0 - B2.powi(self.t);
        for i in 0..params.len() {
            self.m[i] = B1 * self.m[i] + (1.0 - B1) * grads[i];
            self.v[i] = B2 * self.v[i] + (1.0 - B2) * grads[i] * grads[i];
            params[i] -= lr * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + 1e-8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separable_classes_are_learned() {
        // Three clusters on the axes of a 3-d space, with noise.
        let mut rng = fastrand::Rng::with_seed(3);
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for i in 0..300 {
            let y = i % 3;
            let mut x: Vec<f32> = (0..3).map(|_| rng.f32() * 0.4 - 0.2).collect();
            x[y] += 1.0;
            xs.push(x);
            ys.push(y);
        }
        let (w, b) = train_softmax(&xs, &ys, 3, &TrainOptions::default());
        let right = xs
            .iter()
            .zip(&ys)
            .filter(|(x, &y)| argmax(&scores(&w, &b, x)) == y)
            .count();
        assert_eq!(right, 300);
    }
}
