#!/usr/bin/env python3
"""PyTorch (CPU) equivalents of `viscoin bench models`, for side-by-side comparison.

Optional: only `launch/bench-compare` runs it, and only where PyTorch is installed. It is never
a dependency of the build or the tests. The networks are written out here (no torchvision, no
stylegan2-ada checkout) and do what the reference implementations do on the CPU:

  * ResNet-50 (HF layout: stride in the 3x3 convolution) with a 200-class head: a training step
    (forward, cross entropy, backward, Adam) and inference, at each --resolutions size;
  * StyleGAN2-ADA `--cfg=auto` at 256 px (2-layer mapping, channel base 16384, conv clamp 256,
    resnet discriminator with minibatch std) and the tiny 32 px preset of the demo: generator
    inference (fused modulated convolutions, as the reference does outside training), one G
    step (G forward with random noise, D forward with D frozen, backward, Adam) and one D step
    on reals with the R1 penalty (double backward, as the reference's Dreg phase);
    upfirdn2d and bias_act are the reference's CPU ("ref") implementations.

  * with --only viscoin, one VisCoIN training iteration at 256 px (viscoin.md 7: f = ResNet-50
    frozen in eval mode, run on the real + synthetic batch and on the reconstruction; Psi; Theta;
    the adapted mapping into the frozen synthesis network in training mode; LPIPS-VGG; every loss
    term; backward; both Adam steps), timed part by part like `viscoin bench viscoin`, and the
    evaluation forward pass.

Each measurement is one warm-up then the median of --steps timed steps, the same rule as ours.
Output: one JSON object per line with the same names as `viscoin bench models|viscoin --json`.

usage: python tools/bench_torch.py [--threads 2] [--batch 8] [--steps 3] [--only all|resnet|stylegan|tiny|viscoin]
                                   [--resolutions 224,256] [--label default] [--autocast bf16]
"""
import argparse
import contextlib
import json
import math
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# --- ResNet-50 -------------------------------------------------------------------------------

class Bottleneck(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        mid = cout // 4
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if cin != cout or stride != 1:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class ResNet50(nn.Module):
    def __init__(self, classes=200):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        layers, cin = [], 64
        for i, (depth, cout) in enumerate(zip([3, 4, 6, 3], [256, 512, 1024, 2048])):
            for j in range(depth):
                layers.append(Bottleneck(cin, cout, 2 if (j == 0 and i > 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.linear = nn.Linear(2048, classes)

    def forward(self, x):
        return self.classify(x)[0]

    def classify(self, x):
        """Logits and the outputs of the four stages (VisCoIN's Psi reads the last three)."""
        x, hidden = self.stem(x), []
        for i, block in enumerate(self.layers):
            x = block(x)
            if i in (2, 6, 12, 15):
                hidden.append(x)
        return self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1)), hidden


# --- StyleGAN2-ADA (reference CPU paths) -------------------------------------------------------

def setup_filter(taps=(1, 3, 3, 1)):
    f = torch.tensor(taps, dtype=torch.float32)
    f = f[:, None] * f[None, :]
    return f / f.sum()


def upfirdn2d(x, f, up=1, down=1, padding=(0, 0, 0, 0), gain=1):
    """upfirdn2d's "ref" implementation: zero insertion, pad, depthwise FIR, stride."""
    b, c, h, w = x.shape
    px0, px1, py0, py1 = padding
    if up > 1:
        x = x.reshape(b, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(b, c, h * up, w * up)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    f = (f * (gain ** (f.ndim / 2))).flip([0, 1])
    f = f[None, None].repeat([c, 1, 1, 1])
    x = F.conv2d(x, f, groups=c)
    return x[:, :, ::down, ::down]


def bias_act(x, b, act="linear", gain=None, clamp=None):
    if b is not None:
        x = x + b.reshape([1, -1] + [1] * (x.ndim - 2))
    if act == "lrelu":
        x = F.leaky_relu(x, 0.2) * (math.sqrt(2) if gain is None else gain)
    elif gain is not None and gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def conv2d_resample(x, w, f, up=1, down=1, padding=0, groups=1, flip_weight=True):
    """conv2d_resample for the cases StyleGAN2 uses (3x3 up 2, 3x3/1x1 down 2, plain)."""
    out_c, in_c, kh, kw = w.shape
    fw = f.shape[-1] if f is not None else 1
    px0 = px1 = padding
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
    if up == 1 and not flip_weight and kw > 1:  # conv2d is a correlation
        w = w.flip([2, 3])
    if kw == 1 and down > 1 and up == 1:
        x = upfirdn2d(x, f, down=down, padding=(px0, px1, px0, px1))
        return F.conv2d(x, w, groups=groups)
    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=(px0, px1, px0, px1))
        return F.conv2d(x, w, stride=down, groups=groups)
    if up > 1:
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_c // groups, in_c, kh, kw).transpose(1, 2).reshape(groups * in_c, out_c // groups, kh, kw)
        px0 -= kw - 1
        px1 -= kw - up
        pxt = max(min(-px0, -px1), 0)
        x = F.conv_transpose2d(x, w.flip([2, 3]) if flip_weight else w, stride=up, padding=pxt, groups=groups)
        return upfirdn2d(x, f, padding=(px0 + pxt, px1 + pxt, px0 + pxt, px1 + pxt), gain=up ** 2)
    return F.conv2d(x, w, padding=px0, groups=groups)


def modulated_conv2d(x, weight, styles, noise=None, up=1, padding=0, f=None, demodulate=True, flip_weight=True, fused=True):
    batch = x.shape[0]
    out_c, in_c, kh, kw = weight.shape
    w = weight.unsqueeze(0) * styles.reshape(batch, 1, -1, 1, 1)
    dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt() if demodulate else None
    if not fused:
        x = x * styles.reshape(batch, -1, 1, 1)
        x = conv2d_resample(x, weight, f, up=up, padding=padding, flip_weight=flip_weight)
        if demodulate:
            x = x * dcoefs.reshape(batch, -1, 1, 1)
        return x if noise is None else x + noise
    if demodulate:
        w = w * dcoefs.reshape(batch, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    x = conv2d_resample(x, w.reshape(-1, in_c, kh, kw), f, up=up, padding=padding, groups=batch, flip_weight=flip_weight)
    x = x.reshape(batch, -1, *x.shape[2:])
    return x if noise is None else x + noise


def normalize_2nd_moment(x, eps=1e-8):
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class FC(nn.Module):
    def __init__(self, cin, cout, act="linear", lr_mul=1.0, bias_init=0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin) / lr_mul)
        self.bias = nn.Parameter(torch.full([cout], float(bias_init)))
        self.act, self.wg, self.bg = act, lr_mul / math.sqrt(cin), lr_mul

    def forward(self, x):
        w, b = self.weight * self.wg, self.bias * self.bg
        if self.act == "linear":
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, self.act)


class Conv(nn.Module):
    def __init__(self, cin, cout, k, act="linear", bias=True, down=1, clamp=None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.register_buffer("f", setup_filter())
        self.act, self.down, self.pad, self.clamp = act, down, k // 2, clamp
        self.wg = 1 / math.sqrt(cin * k * k)

    def forward(self, x, gain=1):
        x = conv2d_resample(x, self.weight * self.wg, self.f, down=self.down, padding=self.pad)
        g = (math.sqrt(2) if self.act == "lrelu" else 1) * gain
        return bias_act(x, self.bias, self.act, g, None if self.clamp is None else self.clamp * gain)


class SynthesisLayer(nn.Module):
    def __init__(self, cin, cout, w_dim, res, up=1, clamp=256):
        super().__init__()
        self.affine = FC(w_dim, cin, bias_init=1)
        self.weight = nn.Parameter(torch.randn(cout, cin, 3, 3))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("f", setup_filter())
        self.up, self.res, self.clamp = up, res, clamp

    def forward(self, x, w, fused):
        styles = self.affine(w)
        noise = torch.randn([x.shape[0], 1, self.res, self.res]) * self.noise_strength
        x = modulated_conv2d(x, self.weight, styles, noise, up=self.up, padding=1, f=self.f, flip_weight=(self.up == 1), fused=fused)
        return bias_act(x, self.bias, "lrelu", math.sqrt(2), self.clamp * math.sqrt(2))


class ToRGB(nn.Module):
    def __init__(self, cin, w_dim, clamp=256):
        super().__init__()
        self.affine = FC(w_dim, cin, bias_init=1)
        self.weight = nn.Parameter(torch.randn(3, cin, 1, 1))
        self.bias = nn.Parameter(torch.zeros(3))
        self.wg, self.clamp = 1 / math.sqrt(cin), clamp

    def forward(self, x, w, fused):
        x = modulated_conv2d(x, self.weight, self.affine(w) * self.wg, demodulate=False, fused=fused)
        return bias_act(x, self.bias, clamp=self.clamp)


class Generator(nn.Module):
    def __init__(self, res, z_dim=512, w_dim=512, channel_base=16384, channel_max=512, mapping_layers=2):
        super().__init__()
        ch = lambda r: min(channel_base // r, channel_max)
        self.z_dim, self.res = z_dim, res
        self.mapping = nn.ModuleList([FC(z_dim if i == 0 else w_dim, w_dim, "lrelu", lr_mul=0.01) for i in range(mapping_layers)])
        self.const = nn.Parameter(torch.randn(ch(4), 4, 4))
        self.blocks = nn.ModuleList()
        self.register_buffer("f", setup_filter())
        r = 4
        while r <= res:
            block = nn.Module()
            if r > 4:
                block.conv0 = SynthesisLayer(ch(r // 2), ch(r), w_dim, r, up=2)
            block.conv1 = SynthesisLayer(ch(r), ch(r), w_dim, r)
            block.torgb = ToRGB(ch(r), w_dim)
            self.blocks.append(block)
            r *= 2
        self.num_ws = 2 * len(self.blocks)

    def forward(self, z):
        w = normalize_2nd_moment(z)
        for layer in self.mapping:
            w = layer(w)
        return self.synthesis(w.unsqueeze(1).expand(-1, self.num_ws, -1))

    def synthesis(self, ws):
        """ws [N, num_ws, w_dim]: block i reads ws[2i-1] (conv0), ws[2i] (conv1), ws[2i+1] (torgb)."""
        fused = not self.training
        x = self.const.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
        img = None
        for i, block in enumerate(self.blocks):
            if i > 0:
                x = block.conv0(x, ws[:, 2 * i - 1], fused)
            x = block.conv1(x, ws[:, 2 * i], fused)
            y = block.torgb(x, ws[:, 2 * i + 1], fused)
            img = y if img is None else upfirdn2d(img, self.f, up=2, padding=(2, 1, 2, 1), gain=4) + y
        return img


class Discriminator(nn.Module):
    def __init__(self, res, channel_base=16384, channel_max=512, mbstd_group=4):
        super().__init__()
        ch = lambda r: min(channel_base // r, channel_max)
        self.blocks = nn.ModuleList()
        r = res
        while r > 4:
            block = nn.Module()
            if r == res:
                block.fromrgb = Conv(3, ch(r), 1, "lrelu", clamp=256)
            block.conv0 = Conv(ch(r), ch(r), 3, "lrelu", clamp=256)
            block.conv1 = Conv(ch(r), ch(r // 2), 3, "lrelu", down=2, clamp=256)
            block.skip = Conv(ch(r), ch(r // 2), 1, bias=False, down=2)
            self.blocks.append(block)
            r //= 2
        self.group = mbstd_group
        self.conv = Conv(ch(4) + 1, ch(4), 3, "lrelu", clamp=256)
        self.fc = FC(ch(4) * 16, ch(4), "lrelu")
        self.out = FC(ch(4), 1)

    def forward(self, img):
        x = None
        for block in self.blocks:
            if x is None:
                x = block.fromrgb(img)
            y = block.skip(x, gain=math.sqrt(0.5))
            x = block.conv0(x)
            x = y.add_(block.conv1(x, gain=math.sqrt(0.5)))
        n, c, h, w = x.shape
        g = min(self.group, n)
        y = x.reshape(g, -1, 1, c, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4]).reshape(-1, 1, 1, 1).repeat(g, 1, h, w)
        x = self.conv(torch.cat([x, y], dim=1))
        return self.out(self.fc(x.flatten(1)))


# --- VisCoIN (viscoin.md): Psi, Theta, the adapted mapping, LPIPS-VGG ---------------------------

class ConceptExtractor(nn.Module):
    def __init__(self, concepts=256, latent=512, inputs=(512, 1024, 2048)):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs[0], latent, 5, 4, 2)
        self.conv2 = nn.Conv2d(inputs[1], latent, 3, 2, 1)
        self.conv3 = nn.Conv2d(inputs[2], latent, 3, 1, 1)
        self.conv4 = nn.Conv2d(3 * latent, 3 * latent, 3, 1, 1)
        self.conv5 = nn.Conv2d(3 * latent, concepts, 1)
        self.pool = nn.AdaptiveAvgPool2d(3)
        self.linear1 = nn.Linear(27 * latent, 9 * concepts)
        self.linear2 = nn.Linear(9 * concepts, 9 * concepts, bias=False)

    def forward(self, h2, h3, h4):
        x = torch.cat([F.relu(self.conv1(h2)), F.relu(self.conv2(h3)), F.relu(self.conv3(h4))], dim=1)
        u = F.relu(self.conv4(x))
        phi = self.pool(F.relu(self.conv5(u)))
        return phi, F.relu(self.linear2(F.relu(self.linear1(self.pool(u).flatten(1)))))


class Explainer(nn.Module):
    def __init__(self, concepts=256, classes=200):
        super().__init__()
        self.dropout = nn.Dropout(0.01)
        self.linear = nn.Linear(concepts, classes)

    def forward(self, phi):
        return self.linear(F.adaptive_max_pool2d(self.dropout(phi), 1).flatten(1))


class MappingAdapted(nn.Module):
    def __init__(self, z_dim=2304, w_dim=512, num_ws=14, coarse=2, mid=10):
        super().__init__()
        self.s = nn.ModuleList([FC(z_dim, w_dim, "lrelu", lr_mul=0.01) for _ in range(num_ws)])
        self.fixed_w_avg = nn.Parameter(torch.zeros(w_dim))
        self.coarse, self.mid = coarse, mid

    def forward(self, phi, phi_prime):
        a1, a2 = normalize_2nd_moment(phi.flatten(1)), normalize_2nd_moment(phi_prime)
        ws = torch.stack([s(a2 if (i < self.coarse or i > self.mid) else a1) for i, s in enumerate(self.s)], dim=1)
        return ws + self.fixed_w_avg


class LPIPS(nn.Module):
    """LPIPS-VGG 0.1 (metrics.md 4): scaling, VGG16 features tapped at 5 points, 1x1 heads."""
    def __init__(self):
        super().__init__()
        cfg = [[64, 64], ["M", 128, 128], ["M", 256, 256, 256], ["M", 512, 512, 512], ["M", 512, 512, 512]]
        self.slices, cin = nn.ModuleList(), 3
        for part in cfg:
            layers = []
            for c in part:
                if c == "M":
                    layers.append(nn.MaxPool2d(2, 2))
                else:
                    layers += [nn.Conv2d(cin, c, 3, 1, 1), nn.ReLU()]
                    cin = c
            self.slices.append(nn.Sequential(*layers))
        self.lins = nn.ModuleList([nn.Conv2d(c, 1, 1, bias=False) for c in (64, 128, 256, 512, 512)])
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).reshape(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).reshape(1, 3, 1, 1))

    def forward(self, x0, x1):
        n = x0.shape[0]
        x = (torch.cat([x0, x1]) - self.shift) / self.scale
        total = 0
        for sl, lin in zip(self.slices, self.lins):
            x = sl(x)
            f = x / (x.square().sum(dim=1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((f[:n] - f[n:]).square()).mean(dim=[2, 3], keepdim=True)
        return total


def cross_cross_entropy(pred, target):
    return -(target.softmax(dim=1) * pred.log_softmax(dim=1)).sum(dim=1).mean()


def concept_regularization(phi):
    a = phi.amax(dim=[2, 3])
    return F.normalize(a, dim=1).abs().mean() + phi.abs().mean()


def concept_orthogonality(w):
    w = F.normalize(w.flatten(1), dim=1).abs()
    k = w.shape[0]
    return ((w @ w.t()).sum() - k) / k ** 2


def bench_viscoin(args, report):
    """One VisCoIN training iteration part by part, as `viscoin bench viscoin` times it."""
    torch.manual_seed(3)
    f, g, psi, theta, mapping, lpips = ResNet50(), Generator(256), ConceptExtractor(), Explainer(), MappingAdapted(), LPIPS()
    for module in (f, g, lpips):
        module.requires_grad_(False)
    f.eval(); lpips.eval(); g.train(); psi.train(); theta.train()
    mean = torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)
    classify = lambda x: f.classify(((x + 1) / 2 - mean) / std)
    opt = torch.optim.Adam(list(psi.parameters()) + list(theta.parameters()), lr=1e-4)
    gan_opt = torch.optim.Adam(mapping.parameters(), lr=1e-4)
    b = args.batch
    real = torch.rand(b, 3, 256, 256) * 2 - 1
    labels = torch.arange(b) % 200
    parts = {"synthetic": [], "forward": [], "backward": [], "step": []}
    for iteration in range(max(2, args.steps + 1)):
        t0 = time.perf_counter()
        with torch.no_grad():
            synthetic = g(torch.randn(b, g.z_dim))
        t1 = time.perf_counter()
        x = torch.cat([real, synthetic])
        logits, hidden = classify(x)
        phi, phi_prime = psi(*hidden[-3:])
        logits_theta = theta(phi)
        ws = mapping(phi, phi_prime)
        rebuilt = g.synthesis(ws)
        logits_rec, _ = classify(rebuilt)
        with torch.no_grad():
            acc = F.cross_entropy(logits[:b], labels)
        total = (acc + 0.2 * concept_regularization(phi) + 0.5 * cross_cross_entropy(logits_theta, logits.detach())
                 + concept_orthogonality(psi.conv5.weight)
                 + F.l1_loss(rebuilt, x) + F.mse_loss(rebuilt, x) + 0.1 * cross_cross_entropy(logits_rec, logits.detach())
                 + 3.0 * lpips(rebuilt, x).mean() + (ws - mapping.fixed_w_avg.detach()).square().mean())
        t2 = time.perf_counter()
        total.backward()
        t3 = time.perf_counter()
        opt.step(); gan_opt.step(); opt.zero_grad(set_to_none=True); gan_opt.zero_grad(set_to_none=True)
        t4 = time.perf_counter()
        if iteration > 0:  # the first iteration warms up
            for key, value in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                parts[key].append(value)
        del x, logits, hidden, phi, phi_prime, logits_theta, ws, rebuilt, logits_rec, total
    med = {k: sorted(v)[len(v) // 2] for k, v in parts.items()}
    report.add("synthetic half (pretrained G)", med["synthetic"] * 1000, "ms")
    report.add("forward (f, Psi, Theta, adapted G, f, LPIPS, losses)", med["forward"] * 1000, "ms")
    report.add("backward (with the gradient all-reduce)", med["backward"] * 1000, "ms")
    report.add("two Adam steps", med["step"] * 1000, "ms")
    total = sum(med.values())
    report.add("training iteration", 2 * b / total, "images/s", iteration_ms=total * 1000)
    for module in (psi, theta, g):
        module.eval()
    def evaluate():
        with torch.no_grad():
            logits, hidden = classify(real)
            phi, phi_prime = psi(*hidden[-3:])
            theta(phi)
            classify(g.synthesis(mapping(phi, phi_prime)))
    t = time_steps(args.steps, evaluate)
    report.add("evaluation forward", b / t, "images/s", batch_ms=t * 1000)


# --- timing ----------------------------------------------------------------------------------

def time_steps(steps, body):
    body()
    times = []
    for _ in range(max(1, steps)):
        t = time.perf_counter()
        body()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def minor_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class Report:
    def __init__(self, args):
        self.settings = {"bench": "torch models", "threads": args.threads, "batch": args.batch, "torch": torch.__version__,
                         "malloc": args.label, "precision": args.autocast or "float32", "kernels": "oneDNN " + (torch.backends.cpu.get_cpu_capability() if hasattr(torch.backends, "cpu") else "?")}

    def add(self, name, value, unit, **extra):
        print(json.dumps({"name": name, "value": value, "unit": unit, **extra, **self.settings}), flush=True)


AUTOCAST = None


def amp():
    """torch.autocast on the CPU with --autocast bf16 (convolutions and matrix products in bf16)."""
    return torch.autocast("cpu", dtype=torch.bfloat16) if AUTOCAST == "bf16" else contextlib.nullcontext()


def adam(params):
    return torch.optim.Adam([p for p in params if p.requires_grad], lr=1e-4)


def bench_resnet(r, args, report):
    torch.manual_seed(1)
    model = ResNet50()
    opt = adam(model.parameters())
    x = torch.randn(args.batch, 3, r, r)
    labels = torch.arange(args.batch) % 200
    model.train()
    faults = [0]

    def step():
        before = minor_faults()
        opt.zero_grad(set_to_none=True)
        with amp():
            loss = F.cross_entropy(model(x), labels)
        loss.backward()
        opt.step()
        faults[0] = minor_faults() - before

    t = time_steps(args.steps, step)
    report.add(f"resnet50 train step {r}px", args.batch / t, "images/s", step_ms=t * 1000, minor_faults_per_step=faults[0])
    model.eval()
    with torch.no_grad(), amp():
        t = time_steps(args.steps, lambda: model(x))
    report.add(f"resnet50 inference {r}px", args.batch / t, "images/s", step_ms=t * 1000)


def bench_stylegan(name, make, steps, args, report, r1=True):
    torch.manual_seed(2)
    g, d = make()
    z = torch.randn(args.batch, g.z_dim)
    g.eval()
    with torch.no_grad(), amp():
        t = time_steps(steps, lambda: g(z))
    report.add(f"{name} G inference", args.batch / t, "images/s", step_ms=t * 1000)
    g.train()
    for p in d.parameters():
        p.requires_grad_(False)
    opt = adam(g.parameters())
    faults = [0]

    def gstep():
        before = minor_faults()
        opt.zero_grad(set_to_none=True)
        with amp():
            loss = F.softplus(-d(g(z).float())).mean()
        loss.backward()
        opt.step()
        faults[0] = minor_faults() - before

    t = time_steps(steps, gstep)
    report.add(f"{name} G step (G fwd, D fwd, backward)", args.batch / t, "images/s", step_ms=t * 1000, minor_faults_per_step=faults[0])
    if not r1:
        return
    for p in d.parameters():
        p.requires_grad_(True)
    dopt = adam(d.parameters())
    real = torch.rand(args.batch, 3, g.res, g.res) * 2 - 1
    gamma = 0.8192

    def dstep():
        before = minor_faults()
        dopt.zero_grad(set_to_none=True)
        x = real.detach().requires_grad_(True)
        logits = d(x)
        (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
        penalty = grad.square().sum(dim=[1, 2, 3])
        (logits * 0 + penalty.unsqueeze(1) * (gamma / 2)).mean().backward()
        dopt.step()
        faults[0] = minor_faults() - before

    t = time_steps(steps, dstep)
    report.add(f"{name} D real + R1 step", args.batch / t, "images/s", step_ms=t * 1000, minor_faults_per_step=faults[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--only", default="all", choices=["resnet", "stylegan", "tiny", "all", "viscoin"],
                    help="'all' is the `bench models` set; 'viscoin' is `bench viscoin` (run it in its own process)")
    ap.add_argument("--resolutions", default="224,256")
    ap.add_argument("--label", default="default", help="recorded as 'malloc' in each line")
    ap.add_argument("--autocast", choices=["bf16"], help="run the ResNet and the G passes under torch.autocast (CPU, bf16)")
    args = ap.parse_args()
    global AUTOCAST
    AUTOCAST = args.autocast
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    report = Report(args)
    if args.only in ("all", "resnet"):
        for r in [int(s) for s in args.resolutions.split(",")]:
            bench_resnet(r, args, report)
    if args.only in ("all", "stylegan"):
        bench_stylegan("stylegan2 auto 256", lambda: (Generator(256), Discriminator(256)), args.steps, args, report)
    if args.only == "viscoin":
        report.settings["bench"] = "torch viscoin"
        bench_viscoin(args, report)
    if args.only in ("all", "tiny"):
        tiny = lambda: (Generator(32, z_dim=64, w_dim=64, channel_base=1024, channel_max=64),
                        Discriminator(32, channel_base=1024, channel_max=64))
        bench_stylegan("stylegan2 tiny 32", tiny, args.steps * 5, args, report)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report.add("peak resident memory", usage.ru_maxrss / 1024, "MiB")
    report.add("minor page faults", usage.ru_minflt, "faults")


if __name__ == "__main__":
    sys.exit(main())
