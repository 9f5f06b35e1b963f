//! A one-layer LSTM with a linear head, its gradient by backpropagation
//! through time, and Adam: plain loops over `f64`, single-threaded and
//! deterministic. The forward pass is the one serving uses, so training and
//! serving cannot disagree; a test checks the gradient against finite
//! differences.
//!
//! Gates follow the usual layout `a = W·x_t + U·h_{t−1} + b` split into
//! input, forget, cell and output blocks of `hidden` rows each.

use serde::{Deserialize, Serialize};

use crate::rng::Rng;

/// The network's weights, flat and row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Net {
    pub inputs: usize,
    pub hidden: usize,
    pub outputs: usize,
    /// `4·hidden × inputs`.
    pub w: Vec<f64>,
    /// `4·hidden × hidden`.
    pub u: Vec<f64>,
    /// `4·hidden`.
    pub b: Vec<f64>,
    /// `outputs × hidden`.
    pub v: Vec<f64>,
    /// `outputs`.
    pub c: Vec<f64>,
}

/// What the backward pass needs from each step of the forward pass.
#[derive(Debug, Clone, Default)]
struct Step {
    h_prev: Vec<f64>,
    c_prev: Vec<f64>,
    /// Activated gates `[i, f, g, o]`.
    gates: Vec<f64>,
    c: Vec<f64>,
}

/// A dot product with four running sums: a single `sum()` is a chain of
/// dependent additions that the compiler may not reorder, and it was most
/// of a fit's time.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut sums = [0.0; 4];
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = a4
        .remainder()
        .iter()
        .zip(b4.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a4.zip(b4) {
        for k in 0..4 {
            sums[k] += x[k] * y[k];
        }
    }
    (sums[0] + sums[1]) + (sums[2] + sums[3]) + tail
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

impl Net {
    /// Uniform `±1/√hidden` weights (PyTorch's initialisation), forget bias
    /// 1 and a head scaled down so that the first predictions are near the
    /// targets' mean.
    pub fn new(inputs: usize, hidden: usize, outputs: usize, rng: &mut Rng) -> Net {
        let bound = 1.0 / (hidden as f64).sqrt();
        let mut uniform = |n: usize, scale: f64| -> Vec<f64> {
            (0..n)
                .map(|_| scale * bound * (2.0 * rng.uniform() - 1.0))
                .collect()
        };
        let w = uniform(4 * hidden * inputs, 1.0);
        let u = uniform(4 * hidden * hidden, 1.0);
        let v = uniform(outputs * hidden, 0.1);
        let mut b = vec![0.0; 4 * hidden];
        b[hidden..2 * hidden].iter_mut().for_each(|x| *x = 1.0);
        Net {
            inputs,
            hidden,
            outputs,
            w,
            u,
            b,
            v,
            c: vec![0.0; outputs],
        }
    }

    pub fn parameter_count(&self) -> usize {
        self.w.len() + self.u.len() + self.b.len() + self.v.len() + self.c.len()
    }

    /// The outputs for a sequence of input rows (oldest first).
    pub fn forward(&self, sequence: &[&[f64]]) -> Vec<f64> {
        let (h, _) = self.run(sequence, false);
        self.head(&h)
    }

    fn head(&self, h: &[f64]) -> Vec<f64> {
        (0..self.outputs)
            .map(|k| self.c[k] + dot(&self.v[k * self.hidden..(k + 1) * self.hidden], h))
            .collect()
    }

    /// Runs the recurrence; returns the last hidden state and, when asked,
    /// every step's values for the backward pass.
    fn run(&self, sequence: &[&[f64]], keep: bool) -> (Vec<f64>, Vec<Step>) {
        let n = self.hidden;
        let mut h = vec![0.0; n];
        let mut c = vec![0.0; n];
        let mut steps = Vec::with_capacity(if keep { sequence.len() } else { 0 });
        let mut a = vec![0.0; 4 * n];
        for x in sequence {
            for (r, slot) in a.iter_mut().enumerate() {
                let w = &self.w[r * self.inputs..(r + 1) * self.inputs];
                let u = &self.u[r * n..(r + 1) * n];
                *slot = self.b[r] + dot(w, x) + dot(u, &h);
            }
            let mut gates = vec![0.0; 4 * n];
            for j in 0..n {
                gates[j] = sigmoid(a[j]);
                gates[n + j] = sigmoid(a[n + j]);
                gates[2 * n + j] = a[2 * n + j].tanh();
                gates[3 * n + j] = sigmoid(a[3 * n + j]);
            }
            let c_new: Vec<f64> = (0..n)
                .map(|j| gates[n + j] * c[j] + gates[j] * gates[2 * n + j])
                .collect();
            let h_new: Vec<f64> = (0..n).map(|j| gates[3 * n + j] * c_new[j].tanh()).collect();
            if keep {
                steps.push(Step {
                    h_prev: std::mem::replace(&mut h, h_new),
                    c_prev: std::mem::replace(&mut c, c_new.clone()),
                    gates,
                    c: c_new,
                });
            } else {
                h = h_new;
                c = c_new;
            }
        }
        (h, steps)
    }

    /// Adds the gradient of `weight · Σ_k (y_k − target_k)² / outputs` for
    /// one sequence to `grad`; returns that loss term.
    pub fn accumulate(
        &self,
        sequence: &[&[f64]],
        target: &[f64],
        weight: f64,
        grad: &mut Net,
    ) -> f64 {
        let n = self.hidden;
        let (h_last, steps) = self.run(sequence, true);
        let y = self.head(&h_last);
        let scale = weight / self.outputs as f64;
        let mut loss = 0.0;
        let mut dh = vec![0.0; n];
        for k in 0..self.outputs {
            let e = y[k] - target[k];
            loss += scale * e * e;
            let dy = 2.0 * scale * e;
            grad.c[k] += dy;
            let row = k * n;
            for j in 0..n {
                grad.v[row + j] += dy * h_last[j];
                dh[j] += dy * self.v[row + j];
            }
        }
        let mut dc = vec![0.0; n];
        let mut da = vec![0.0; 4 * n];
        for (step, x) in steps.iter().zip(sequence).rev() {
            let g = &step.gates;
            for j in 0..n {
                let (i, f, cell, o) = (g[j], g[n + j], g[2 * n + j], g[3 * n + j]);
                let tc = step.c[j].tanh();
                let d_o = dh[j] * tc;
                dc[j] += dh[j] * o * (1.0 - tc * tc);
                da[j] = dc[j] * cell * i * (1.0 - i);
                da[n + j] = dc[j] * step.c_prev[j] * f * (1.0 - f);
                da[2 * n + j] = dc[j] * i * (1.0 - cell * cell);
                da[3 * n + j] = d_o * o * (1.0 - o);
                dc[j] *= f;
            }
            dh.iter_mut().for_each(|v| *v = 0.0);
            for (r, d) in da.iter().enumerate() {
                grad.b[r] += d;
                let w = &mut grad.w[r * self.inputs..(r + 1) * self.inputs];
                w.iter_mut().zip(*x).for_each(|(p, q)| *p += d * q);
                let u = &mut grad.u[r * n..(r + 1) * n];
                u.iter_mut()
                    .zip(&step.h_prev)
                    .for_each(|(p, q)| *p += d * q);
                let u_row = &self.u[r * n..(r + 1) * n];
                dh.iter_mut().zip(u_row).for_each(|(p, q)| *p += d * q);
            }
        }
        loss
    }

    /// A network of the same shape with every weight zero: a gradient buffer.
    pub fn zeros_like(&self) -> Net {
        Net {
            w: vec![0.0; self.w.len()],
            u: vec![0.0; self.u.len()],
            b: vec![0.0; self.b.len()],
            v: vec![0.0; self.v.len()],
            c: vec![0.0; self.c.len()],
            ..*self
        }
    }

    fn parts_mut(&mut self) -> [&mut Vec<f64>; 5] {
        [
            &mut self.w,
            &mut self.u,
            &mut self.b,
            &mut self.v,
            &mut self.c,
        ]
    }

    fn parts(&self) -> [&Vec<f64>; 5] {
        [&self.w, &self.u, &self.b, &self.v, &self.c]
    }

    /// Whether every weight is finite: what a loaded artifact must satisfy.
    pub fn is_finite(&self) -> bool {
        self.parts().iter().all(|p| p.iter().all(|v| v.is_finite()))
    }

    /// Whether the weight vectors have the sizes the shape says.
    pub fn is_consistent(&self) -> bool {
        let (i, h, o) = (self.inputs, self.hidden, self.outputs);
        self.w.len() == 4 * h * i
            && self.u.len() == 4 * h * h
            && self.b.len() == 4 * h
            && self.v.len() == o * h
            && self.c.len() == o
    }
}

/// Adam with gradient clipping by global norm.
#[derive(Debug, Clone)]
pub struct Adam {
    rate: f64,
    clip: f64,
    m: Net,
    s: Net,
    t: i32,
}

impl Adam {
    const BETA1: f64 = 0.9;
    const BETA2: f64 = 0.999;
    const EPSILON: f64 = 1e-8;

    pub fn new(net: &Net, rate: f64, clip: f64) -> Adam {
        Adam {
            rate,
            clip,
            m: net.zeros_like(),
            s: net.zeros_like(),
            t: 0,
        }
    }

    pub fn step(&mut self, net: &mut Net, grad: &Net) {
        self.t += 1;
        let norm = grad
            .parts()
            .iter()
            .flat_map(|p| p.iter())
            .map(|g| g * g)
            .sum::<f64>()
            .sqrt();
        let shrink = if norm > self.clip {
            self.clip / norm
        } else {
            1.0
        };
        let (c1, c2) = (
            1.0 - Self::BETA1.powi(self.t),
            1.0 - Self::BETA2.powi(self.t),
        );
        let rate = self.rate;
        for (((p, g), m), s) in net
            .parts_mut()
            .into_iter()
            .zip(grad.parts())
            .zip(self.m.parts_mut())
            .zip(self.s.parts_mut())
        {
            for (((p, g), m), s) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(s.iter_mut()) {
                let g = g * shrink;
                *m = Self::BETA1 * *m + (1.0 - Self::BETA1) * g;
                *s = Self::BETA2 * *s + (1.0 - Self::BETA2) * g * g;
                *p -= rate * (*m / c1) / ((*s / c2).sqrt() + Self::EPSILON);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gradient_matches_finite_differences() {
        let mut rng = Rng::new(5);
        let net = Net::new(3, 4, 2, &mut rng);
        let rows: Vec<Vec<f64>> = (0..6)
            .map(|_| (0..3).map(|_| rng.normal()).collect())
            .collect();
        let sequence: Vec<&[f64]> = rows.iter().map(Vec::as_slice).collect();
        let target = [0.3, -0.7];
        let mut grad = net.zeros_like();
        net.accumulate(&sequence, &target, 1.0, &mut grad);
        let loss = |n: &Net| {
            let y = n.forward(&sequence);
            y.iter()
                .zip(&target)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>()
                / 2.0
        };
        let epsilon = 1e-6;
        for part in 0..5 {
            for i in 0..net.parts()[part].len() {
                let mut plus = net.clone();
                plus.parts_mut()[part][i] += epsilon;
                let mut minus = net.clone();
                minus.parts_mut()[part][i] -= epsilon;
                let numeric = (loss(&plus) - loss(&minus)) / (2.0 * epsilon);
                let analytic = grad.parts()[part][i];
                assert!(
                    (numeric - analytic).abs() < 1e-7 * (1.0 + numeric.abs()),
                    "part {part} index {i}: {numeric} vs {analytic}"
                );
            }
        }
    }

    #[test]
    fn adam_fits_a_small_sequence_task() {
        // Output the sum of the sequence's first inputs: needs the memory.
        let mut rng = Rng::new(9);
        let mut net = Net::new(1, 8, 1, &mut rng);
        let data: Vec<(Vec<Vec<f64>>, f64)> = (0..64)
            .map(|_| {
                let rows: Vec<Vec<f64>> = (0..5).map(|_| vec![rng.normal() * 0.5]).collect();
                let sum = rows.iter().map(|r| r[0]).sum::<f64>();
                (rows, sum)
            })
            .collect();
        let mse = |net: &Net| {
            data.iter()
                .map(|(rows, y)| {
                    let seq: Vec<&[f64]> = rows.iter().map(Vec::as_slice).collect();
                    (net.forward(&seq)[0] - y).powi(2)
                })
                .sum::<f64>()
                / data.len() as f64
        };
        let before = mse(&net);
        let mut adam = Adam::new(&net, 0.01, 5.0);
        for _ in 0..300 {
            let mut grad = net.zeros_like();
            for (rows, y) in &data {
                let seq: Vec<&[f64]> = rows.iter().map(Vec::as_slice).collect();
                net.accumulate(&seq, &[*y], 1.0 / data.len() as f64, &mut grad);
            }
            adam.step(&mut net, &grad);
        }
        let after = mse(&net);
        assert!(after < 0.05 * before, "{before} → {after}");
    }
}
