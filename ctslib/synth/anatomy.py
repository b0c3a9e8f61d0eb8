"""Wrist anatomy of the synthetic study as tissue maps on a canvas (transverse and longitudinal).

A *scene* is four maps on a canvas somewhat larger than the image (so the probe can sway and slide):

* ``echo``  diffuse backscatter power of the tissue (speckle strength), e.g. fat low, tendon high;
* ``spec``  coherent (specular) reflector amplitude: skin line, fascia, epineurium, bone cortex,
  tendon fibrils. These show as continuous bright lines instead of speckle;
* ``att``   amplitude attenuation per mm; bone attenuates almost totally, casting an acoustic shadow;
* ``mask``  1 inside the median nerve (what an annotator would outline).

Transverse: an oval median nerve with a honeycomb of hypoechoic fascicles just under the arched
flexor retinaculum, flexor tendons around and below it, carpal bones forming the tunnel floor.
Longitudinal: the nerve as a fibrillar band that is swollen proximal to the retinaculum, with a
notch where it enters the tunnel; flexor tendons below it, bone deep. Severity enlarges the nerve,
lowers its echogenicity and blurs its fascicles (``WristAnatomy``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ctslib import GRADES


@dataclass(frozen=True)
class WristAnatomy:
    """Per-wrist anatomy and imaging settings, shared by both planes of a wrist.

    Lengths in mm. ``csa_mm2`` is the true nerve cross-sectional area at the tunnel inlet.
    """

    wrist_id: str
    grade: str
    csa_mm2: float
    aspect: float  # nerve width / thickness in the transverse plane
    nerve_x_mm: float  # nerve position from the image centre (transverse, at rest)
    inlet_x_mm: float  # retinaculum edge from the image centre (longitudinal, at rest)
    retinaculum_depth_mm: float  # depth of the retinaculum's top surface over the nerve
    retinaculum_mm: float  # retinaculum thickness
    tunnel_depth_mm: float  # retinaculum to tunnel floor (bone)
    nerve_echo: float  # echogenicity of the nerve relative to a normal nerve (drops with severity)
    fascicle_blur_mm: float  # how blurred the fascicles are (grows with severity)
    notch: float  # relative constriction of the nerve at the retinaculum edge (longitudinal)
    mirrored: bool  # left wrists are imaged mirrored
    gain_db: float  # overall gain of this wrist's exam
    dynamic_range_db: float  # log-compression dynamic range
    sway_mm: float  # amplitude of the small probe sway between frames

    @property
    def grade_index(self) -> int:
        return GRADES.index(self.grade)

    @property
    def half_width_mm(self) -> float:
        """Transverse semi-axis (lateral) of the nerve ellipse."""
        return math.sqrt(self.csa_mm2 * self.aspect / math.pi)

    @property
    def half_thickness_mm(self) -> float:
        """Transverse semi-axis (depth) of the nerve ellipse; also the longitudinal half-thickness at the inlet."""
        return math.sqrt(self.csa_mm2 / (self.aspect * math.pi))


def draw_anatomy(
    wrist_id: str,
    grade: str,
    side: str,
    gen: np.random.Generator,
    csa_mean_mm2: tuple[float, ...],
    csa_sd_mm2: tuple[float, ...],
) -> WristAnatomy:
    """Draw one wrist's anatomy: severity sets the nerve's size and texture, the rest varies freely.

    CSA is normal-distributed per grade (clipped at 6 mm²), so adjacent grades overlap: the images
    carry a severity signal that CSA alone cannot separate.
    """
    g = GRADES.index(grade)
    csa = max(6.0, gen.normal(csa_mean_mm2[g], csa_sd_mm2[g]))
    return WristAnatomy(
        wrist_id=wrist_id,
        grade=grade,
        csa_mm2=float(csa),
        aspect=float(np.clip(gen.normal(2.9 - 0.12 * g, 0.3), 1.9, 3.8)),
        nerve_x_mm=float(gen.uniform(-5.0, 5.0)),
        inlet_x_mm=float(gen.uniform(-4.0, 4.0)),
        retinaculum_depth_mm=float(gen.uniform(2.2, 4.2)),
        retinaculum_mm=float(gen.uniform(0.8, 1.2) + 0.08 * g),
        tunnel_depth_mm=float(gen.uniform(9.0, 12.0)),
        nerve_echo=float(np.clip(1.0 - 0.14 * g + gen.normal(0.0, 0.07), 0.45, 1.2)),
        fascicle_blur_mm=float(0.04 + 0.09 * g + abs(gen.normal(0.0, 0.04))),
        notch=float(np.clip(0.04 + 0.07 * g + gen.normal(0.0, 0.03), 0.0, 0.4)),
        mirrored=side == "L",
        gain_db=float(gen.normal(0.0, 2.5)),
        dynamic_range_db=float(gen.uniform(38.0, 46.0)),
        sway_mm=float(gen.uniform(0.15, 0.45)),
    )


@dataclass(frozen=True)
class Canvas:
    """Pixel grid of the tissue maps: the image at rest sits at (pad_rows, pad_cols)."""

    rows: int
    cols: int
    pad_rows: int
    pad_cols: int
    image_size: int
    spacing_mm: float

    @classmethod
    def around_image(cls, image_size: int, spacing_mm: float, pad_side_mm: float, pad_depth_mm: float = 2.0) -> "Canvas":
        pad_r = int(math.ceil(pad_depth_mm / spacing_mm))
        pad_c = int(math.ceil(pad_side_mm / spacing_mm))
        return cls(image_size + 2 * pad_r, image_size + 2 * pad_c, pad_r, pad_c, image_size, spacing_mm)

    def grid_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """Lateral x (0 = image centre) and depth z (0 = skin) of every canvas pixel, in mm (float32)."""
        x = (np.arange(self.cols, dtype=np.float32) - self.pad_cols - (self.image_size - 1) / 2) * self.spacing_mm
        z = (np.arange(self.rows, dtype=np.float32) - self.pad_rows) * self.spacing_mm
        return np.meshgrid(x, z)


@dataclass
class Scene:
    """Tissue maps of one plane (see module docstring); float32 except ``mask`` (uint8)."""

    echo: np.ndarray
    spec: np.ndarray
    att: np.ndarray
    mask: np.ndarray


# -- texture helpers ---------------------------------------------------------------------------


def smooth_noise(shape: tuple[int, int], sigma_x_px: float, sigma_z_px: float, gen: np.random.Generator) -> np.ndarray:
    """Gaussian-filtered white noise with unit standard deviation (anisotropic: fibres along x)."""
    noise = gen.standard_normal(shape, dtype=np.float32)
    out = cv2.GaussianBlur(noise, (0, 0), sigmaX=max(sigma_x_px, 0.3), sigmaY=max(sigma_z_px, 0.3))
    return out / max(float(out.std()), 1e-6)


def smooth_curve(x: np.ndarray, amplitude: float, wavelength_mm: float, gen: np.random.Generator) -> np.ndarray:
    """A gently undulating 1-D profile (sum of three random sinusoids) evaluated at ``x`` (mm)."""
    out = np.zeros_like(x)
    for k in range(3):
        wl = wavelength_mm * gen.uniform(0.6, 1.6) / (k + 1)
        out += gen.uniform(0.5, 1.0) / (k + 1) * np.sin(2 * np.pi * x / wl + gen.uniform(0, 2 * np.pi))
    return (amplitude * out / 1.6).astype(np.float32)


def thin_line(distance_mm: np.ndarray, width_mm: float) -> np.ndarray:
    """Gaussian ridge of a line given each pixel's signed distance to it."""
    return np.exp(-((distance_mm / width_mm) ** 2)).astype(np.float32)


def ellipse_radius(x: np.ndarray, z: np.ndarray, cx: float, cz: float, a: float, b: float, angle_rad: float = 0.0) -> np.ndarray:
    """Normalised elliptical radius (< 1 inside the ellipse with semi-axes a (x) and b (z))."""
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    dx, dz = x - cx, z - cz
    u = (c * dx + s * dz) / a
    v = (-s * dx + c * dz) / b
    return np.sqrt(u * u + v * v)


def soft_inside(radius: np.ndarray, edge: float) -> np.ndarray:
    """1 inside, 0 outside, with a soft edge of relative width ``edge``."""
    return np.clip((1.0 - radius) / edge + 0.5, 0.0, 1.0).astype(np.float32)


def bump(x: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-(((x - centre) / width) ** 2)).astype(np.float32)


# -- shared layers -----------------------------------------------------------------------------


def skin_and_fat(x: np.ndarray, z: np.ndarray, canvas: Canvas, fat_depth_mm: float, gen: np.random.Generator) -> Scene:
    """Gel above the skin, the bright skin line, hypoechoic subcutaneous fat with wavy septa."""
    s = canvas.spacing_mm
    skin_z = smooth_curve(x[0], 0.12, 20.0, gen)[None, :]
    depth = z - skin_z
    echo = np.where(depth < 0, 0.0, 0.012).astype(np.float32)
    echo += (np.abs(depth - 0.25) < 0.3) * 0.8
    septa = smooth_noise(x.shape, 2.2 / s, 0.06 / s, gen)
    spec = 0.9 * thin_line(depth - 0.05, 0.08) + 0.3 * np.clip(septa - 1.8, 0, None) * ((depth > 0.5) & (depth < fat_depth_mm))
    att = np.where(depth < 0, 0.0, 0.012).astype(np.float32)
    return Scene(echo, spec.astype(np.float32), att, np.zeros(x.shape, np.uint8))


def bone_surface(scene: Scene, x: np.ndarray, z: np.ndarray, surface: np.ndarray, canvas: Canvas, gen: np.random.Generator) -> None:
    """Bright cortical surface at depth ``surface`` (per column) with total acoustic shadow below."""
    depth = z - surface[None, :]
    cortex = thin_line(depth, 0.12)
    scene.spec += 1.1 * cortex * (1.0 + 0.2 * smooth_noise(x.shape, 1.5 / canvas.spacing_mm, 0.5, gen))
    scene.echo += 1.0 * cortex
    below = depth > 0.15
    scene.echo[below] = 0.3
    scene.att[below] = 2.5


# -- transverse --------------------------------------------------------------------------------


def transverse_scene(anatomy: WristAnatomy, canvas: Canvas, gen: np.random.Generator) -> Scene:
    """Transverse section at the carpal tunnel inlet (see module docstring)."""
    x, z = canvas.grid_mm()
    if anatomy.mirrored:
        x = -x
    s = canvas.spacing_mm
    scene = skin_and_fat(x, z, canvas, anatomy.retinaculum_depth_mm - 0.3, gen)
    xn = anatomy.nerve_x_mm
    xt = xn + 3.0  # tunnel centre: the nerve lies on its radial side, just under the retinaculum
    xr = x[0] - xt

    # Flexor retinaculum: an arched fibrous band that dives to its bony attachments at the sides.
    ret_top = anatomy.retinaculum_depth_mm + 0.012 * xr**2 + 0.22 * np.clip(np.abs(xr) - 10.0, 0, None) ** 2
    ret_top = ret_top + smooth_curve(x[0], 0.1, 8.0, gen)
    ret_top -= 0.012 * (xn - xt) ** 2  # the given depth is the depth over the nerve
    d_ret = z - ret_top[None, :]
    t_r = anatomy.retinaculum_mm
    in_ret = (d_ret >= 0) & (d_ret <= t_r)
    fibres = smooth_noise(x.shape, 1.6 / s, 0.05 / s, gen)
    # Specular echoes fade where the band slopes away from the beam (anisotropy).
    facing = (1.0 / (1.0 + (np.gradient(ret_top, x[0]) / 0.35) ** 2))[None, :]
    scene.echo = np.where(in_ret, 0.03 + 0.6 * facing, scene.echo).astype(np.float32)
    scene.spec += facing * (in_ret * 0.3 * np.clip(fibres, 0, None) + 0.5 * thin_line(d_ret, 0.07) + 0.3 * thin_line(d_ret - t_r, 0.07))

    # Thenar / hypothenar muscles lateral to the tunnel: hypoechoic with bright septa.
    muscle = (np.abs(xr)[None, :] > 9.0) & (d_ret < 0) & (z > 1.6)
    dots = smooth_noise(x.shape, 0.25 / s, 0.12 / s, gen)
    scene.echo[muscle] = 0.02
    scene.spec += muscle * 0.3 * np.clip(dots - 1.5, 0, None)

    # Tunnel contents: synovium/fat, tendons, the nerve; floor = carpal bones.
    floor = anatomy.retinaculum_depth_mm + t_r + anatomy.tunnel_depth_mm - 0.02 * xr**2
    floor = np.maximum(floor + smooth_curve(x[0], 0.6, 9.0, gen), anatomy.retinaculum_depth_mm + 3.0)
    tunnel = (d_ret > t_r) & (z < floor[None, :])
    scene.echo[tunnel] = 0.03

    tendon_dots = smooth_noise(x.shape, 0.12 / s, 0.12 / s, gen)
    nerve_top = anatomy.retinaculum_depth_mm + t_r + 0.1
    a_n, b_n = anatomy.half_width_mm, anatomy.half_thickness_mm
    zn = nerve_top + b_n
    slots = [(0.8, 1.6), (4.3, 1.3), (7.6, 1.9), (-3.6, 5.2), (-0.2, 5.0), (3.3, 5.0), (6.8, 5.4), (-7.0, 4.2)]
    for dx, dz in slots:
        if gen.random() < 0.12:
            continue  # not every tendon is in every section
        cx = xt + dx + gen.normal(0, 0.4)
        cz = nerve_top + dz + 2 * b_n - 2.0 + gen.normal(0, 0.3)
        r = ellipse_radius(x, z, cx, cz, gen.uniform(1.7, 2.3), gen.uniform(1.2, 1.6), gen.normal(0, 0.15))
        inside = soft_inside(r, 0.08)
        scene.echo = scene.echo * (1 - inside) + inside * 0.8 * np.clip(1 + 0.5 * tendon_dots, 0.2, None)
        scene.spec += inside * 0.25 * np.clip(tendon_dots - 0.8, 0, None) + 0.3 * thin_line(r - 1.0, 0.05)
        scene.att += inside * 0.02

    # Ulnar artery in Guyon's canal, superficial to the retinaculum on the ulnar side.
    r_art = ellipse_radius(x, z, xt + 10.5, anatomy.retinaculum_depth_mm - 1.2, 1.0, 0.9)
    scene.echo[r_art < 1.0] = 0.002
    scene.spec += 0.3 * thin_line(r_art - 1.0, 0.08)

    # Median nerve: oval, honeycomb of hypoechoic fascicles in brighter epineurium, bright rim.
    angle = gen.normal(0.0, 0.08)
    r_nerve = ellipse_radius(x, z, xn, zn, a_n, b_n, angle)
    fasc = fascicle_map(x, z, xn, zn, a_n, b_n, angle, anatomy.csa_mm2, gen)
    fasc = cv2.GaussianBlur(fasc, (0, 0), max(anatomy.fascicle_blur_mm / s, 0.3))
    inside = soft_inside(r_nerve, 0.04)
    nerve_echo = anatomy.nerve_echo * (0.45 * (1 - fasc) + 0.025 * fasc)
    scene.echo = scene.echo * (1 - inside) + inside * nerve_echo
    rim = thin_line(r_nerve - 1.0, 0.05)
    scene.spec = scene.spec * (1 - inside) + 0.5 * anatomy.nerve_echo * rim
    scene.mask = (r_nerve < 1.0).astype(np.uint8)

    bone_surface(scene, x, z, floor, canvas, gen)
    return scene


def fascicle_map(
    x: np.ndarray, z: np.ndarray, cx: float, cz: float, a: float, b: float, angle: float, csa: float,
    gen: np.random.Generator, *, count: int | None = None, fill: float = 0.42,
) -> np.ndarray:
    """Map (0..1) of round fascicles packed inside the nerve ellipse (dart throwing, no overlaps).

    ``count`` fascicles (default: one per 0.7 mm², 10 to 32, as a median nerve) fill ``fill`` of the section.
    """
    out = np.zeros(x.shape, np.float32)
    n = int(np.clip(round(csa / 0.7), 10, 32)) if count is None else count
    radius = math.sqrt(fill * csa / (math.pi * n))
    centres: list[tuple[float, float]] = []
    c, s = math.cos(angle), math.sin(angle)
    for _ in range(40 * n):
        if len(centres) == n:
            break
        rho, phi = math.sqrt(gen.uniform(0, 1)) * 0.86, gen.uniform(0, 2 * math.pi)
        u, v = rho * a * math.cos(phi), rho * b * math.sin(phi)
        px, pz = cx + c * u - s * v, cz + s * u + c * v
        if all((px - qx) ** 2 + (pz - qz) ** 2 > (1.9 * radius) ** 2 for qx, qz in centres):
            centres.append((px, pz))
    for px, pz in centres:
        rf = radius * gen.uniform(0.75, 1.25)
        win = _window(x, z, px, pz, 1.5 * rf)
        r = ellipse_radius(x[win], z[win], px, pz, rf * gen.uniform(1.0, 1.3), rf, gen.uniform(0, math.pi))
        out[win] = np.maximum(out[win], soft_inside(r, 0.3))
    return out


def _window(x: np.ndarray, z: np.ndarray, cx: float, cz: float, radius: float) -> tuple[slice, slice]:
    """Canvas slices covering the square of half-side ``radius`` (mm) around (cx, cz)."""
    xs, zs = x[0], z[:, 0]
    cols = np.flatnonzero(np.abs(xs - cx) <= radius)
    rows = np.flatnonzero(np.abs(zs - cz) <= radius)
    if cols.size == 0 or rows.size == 0:
        return slice(0, 0), slice(0, 0)
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


# -- longitudinal ------------------------------------------------------------------------------


def longitudinal_scene(anatomy: WristAnatomy, canvas: Canvas, gen: np.random.Generator, *, nerve_in_plane: bool = True) -> Scene:
    """Longitudinal section along the nerve (proximal on the left); ``nerve_in_plane=False`` gives the
    section a few millimetres beside the nerve (a flexor tendon where the nerve was, no mask)."""
    x, z = canvas.grid_mm()
    s = canvas.spacing_mm
    scene = skin_and_fat(x, z, canvas, anatomy.retinaculum_depth_mm - 0.3, gen)
    g = anatomy.grade_index
    xc = x[0]
    xi = anatomy.inlet_x_mm
    b_in = anatomy.half_thickness_mm
    t_dist = 2 * math.sqrt(7.5 / (math.pi * 3.2))  # flattened nerve under the retinaculum
    t_prox = 1.05 * t_dist
    swelling = max(2 * b_in - t_prox, 0.05)
    thickness = (
        t_dist
        + (t_prox - t_dist) / (1 + np.exp((xc - xi) / 0.8))
        + swelling * bump(xc, xi - 3.0, 3.5) * (xc < xi - 3.0)
        + swelling * bump(xc, xi - 3.0, 2.2) * (xc >= xi - 3.0)
        - anatomy.notch * t_dist * bump(xc, xi + 0.6, 0.9)
    )
    top0 = anatomy.retinaculum_depth_mm + anatomy.retinaculum_mm + 0.1
    # The retinaculum presses from above: the notch dents the upper border, the swelling bulges both ways.
    upper = (
        top0
        + 0.6 * (1 + np.tanh((xc - xi) / 4.0))
        - 0.4 * swelling * bump(xc, xi - 3.0, 3.0)
        + anatomy.notch * t_dist * bump(xc, xi + 0.6, 0.9)
        + smooth_curve(xc, 0.15, 15.0, gen)
    )
    centre = upper + thickness / 2
    v = (z - centre[None, :]) / (thickness[None, :] / 2)  # -1 .. 1 across the nerve
    band_top = centre - thickness / 2
    band_bot = centre + thickness / 2

    # Retinaculum above the nerve from the inlet distally; thin antebrachial fascia proximally.
    t_r = anatomy.retinaculum_mm
    ret_top = band_top - 0.15 - t_r
    d_ret = z - ret_top[None, :]
    has_ret = (xc > xi - 0.3)[None, :]
    in_ret = has_ret & (d_ret >= 0) & (d_ret <= t_r)
    fibres = smooth_noise(x.shape, 2.5 / s, 0.05 / s, gen)
    scene.echo[in_ret] = 0.6
    scene.spec += in_ret * 0.3 * np.clip(fibres, 0, None) + has_ret * (0.45 * thin_line(d_ret, 0.07))
    scene.spec += (~has_ret) * 0.45 * thin_line(z - (band_top - 0.5)[None, :], 0.07)

    # Flexor tendons beneath: fibrillar bands of parallel bright lines; fat between.
    below = z > band_bot[None, :]
    scene.echo[below] = 0.02
    tendon_fibres = smooth_noise(x.shape, 3.0 / s, 0.05 / s, gen)
    level = band_bot + 0.4
    for _ in range(2):
        level = level + gen.uniform(0.3, 1.5)
        thick = gen.uniform(2.0, 2.8)
        tz = (z - level[None, :]) / thick
        inside = ((tz >= 0) & (tz <= 1)).astype(np.float32)
        scene.echo = scene.echo * (1 - inside) + inside * 0.3
        scene.spec += inside * 0.22 * np.clip(tendon_fibres - 0.3, 0, None) + 0.25 * thin_line(tz * thick, 0.06) + 0.25 * thin_line(tz * thick - thick, 0.06)
        scene.att += inside * 0.02
        level = level + thick

    # The median nerve: fibrillar band (hypoechoic fascicles between bright perineurial lines).
    inside = soft_inside(np.abs(v), 0.06)
    if nerve_in_plane:
        stripes = _fascicle_stripes(x, v, gen)
        stripes = cv2.GaussianBlur(stripes, (0, 0), sigmaX=max(2.5 * anatomy.fascicle_blur_mm / s, 0.3), sigmaY=max(anatomy.fascicle_blur_mm / s, 0.3))
        swollen = bump(xc, xi - 3.0, 3.0)[None, :]
        echo = anatomy.nerve_echo * (1 - 0.12 * g * swollen) * (0.45 * (1 - stripes) + 0.03 * stripes)
        scene.echo = scene.echo * (1 - inside) + inside * echo
        edges = thin_line((np.abs(v) - 1.0) * (thickness[None, :] / 2), 0.06)
        scene.spec = scene.spec * (1 - inside) + 0.55 * anatomy.nerve_echo * edges
        scene.mask = (np.abs(v) < 1.0).astype(np.uint8)
    else:
        off = tendon_fibres
        scene.echo = scene.echo * (1 - inside) + inside * 0.45
        scene.spec = scene.spec * (1 - inside) + inside * 0.3 * np.clip(off, 0, None)

    bone = band_bot + gen.uniform(8.0, 11.0) - 1.2 * bump(xc, xi - 6.0, 5.0) - 1.5 * bump(xc, xi + 5.0, 4.0)
    bone = bone + smooth_curve(xc, 0.4, 12.0, gen)
    bone_surface(scene, x, z, bone, canvas, gen)
    return scene


def _fascicle_stripes(x: np.ndarray, v: np.ndarray, gen: np.random.Generator) -> np.ndarray:
    """Map (0..1) of hypoechoic fascicles running along the nerve, occasionally interrupted."""
    out = np.zeros(x.shape, np.float32)
    n = int(gen.integers(4, 7))
    centres = np.linspace(-0.72, 0.72, n) + gen.normal(0, 0.05, n)
    xc = x[0]
    for c in centres:
        width = gen.uniform(0.11, 0.16)
        along = np.clip(1.2 + smooth_curve(xc, 0.9, 10.0, gen), 0, 1)[None, :]
        out = np.maximum(out, along * np.exp(-(((v - c) / width) ** 2)))
    return out.astype(np.float32)
