"""Seeded synthetic studio photos of cars in the exact Kaggle Carvana layout, so the pipeline runs offline.

Each car is a few convex solids (lower body, cabin, four wheels) plus flat details (windows, lights),
seen by a fixed studio camera while a turntable rotates the car 22.5 degrees per view. The car's
polygons are drawn once into an RGBA layer whose alpha is the mask, so mask and photo always agree.
"""

import functools
import math
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from carvana.core.atomic import atomic_write
from carvana.data.imageio import write_mask_gif
from carvana.data.layout import VIEWS_PER_CAR, image_id, image_path, mask_path

Colour = tuple[float, float, float]

# Spawn keys of the SeedSequence streams: the car ids, each car's looks, its studio, each photo's jitter and noise.
IDS_STREAM, CAR_STREAM, STUDIO_STREAM, VIEW_STREAM = 0, 1, 2, 3

PAINTS: list[Colour] = [
    (165, 22, 30),  # red
    (115, 18, 28),  # dark red
    (28, 62, 150),  # blue
    (22, 32, 72),  # navy
    (22, 22, 26),  # black
    (74, 77, 84),  # dark grey
    (148, 153, 160),  # silver, darker than the studio wall
    (196, 197, 202),  # white, tinted below the wall's brightness
    (32, 96, 56),  # green
    (212, 168, 28),  # yellow
    (198, 88, 22),  # orange
    (116, 92, 68),  # brown
]
GLASS: Colour = (36, 44, 54)
TYRE: Colour = (24, 24, 26)
RIM: Colour = (160, 163, 168)
HUB: Colour = (58, 58, 62)
HEADLIGHT: Colour = (232, 232, 222)
TAILLIGHT: Colour = (170, 24, 24)
GRILLE: Colour = (30, 30, 33)

LIGHT = np.array([0.6, 0.35, 1.0]) / np.linalg.norm([0.6, 0.35, 1.0])  # studio key light, world frame
CAMERA_DISTANCE, CAMERA_HEIGHT, CAMERA_AIM = 9.5, 1.55, 0.62  # metres from the turntable centre
FOCAL = 1.75  # focal length in units of the (Carvana-shaped) frame width
WALL_DISTANCE = 5.0  # metres behind the turntable where the floor meets the wall
SHADOW_STRENGTH = 0.5
NOISE = 2.5  # pixel noise, grey levels
NEAR_FLANK = 0.2  # cosine between a flank's normal and the camera beyond which its wheels cover the body


@dataclass(frozen=True)
class Car:
    """One car's shape (metres; x forward, y left, z up, origin on the floor under its centre) and paint."""

    paint: Colour
    length: float
    width: float
    clearance: float
    belt: float  # height of the window sill at the rear; the hood slopes down by hood_drop to the front
    hood_drop: float
    roof: float
    front_radius: float
    rear_radius: float
    screen_base: float  # x of the windscreen's foot
    screen_top: float
    rear_top: float  # x where the roof meets the rear window
    rear_base: float
    roof_radii: tuple[float, float]
    tumblehome: float  # how much narrower the cabin is at the roof than at the sill
    wheel_radius: float
    wheelbase: float


@dataclass(frozen=True)
class Studio:
    wall: Colour
    floor: Colour


@dataclass(frozen=True)
class Face:
    points: np.ndarray  # (N, 3), car frame
    normal: np.ndarray  # outward unit normal, car frame
    colour: Colour
    gloss: float


@dataclass(frozen=True)
class Wheel:
    centre: np.ndarray  # centre of the outer face, car frame
    radius: float
    width: float
    side: int  # +1 left, -1 right


@dataclass(frozen=True)
class Camera:
    position: np.ndarray
    right: np.ndarray
    up: np.ndarray
    forward: np.ndarray
    focal: float
    centre: tuple[float, float]

    def project(self, points: np.ndarray) -> np.ndarray:
        """World points (N, 3) to pixel coordinates (N, 2)."""
        relative = points - self.position
        depth = relative @ self.forward
        u = self.centre[0] + self.focal * (relative @ self.right) / depth
        v = self.centre[1] - self.focal * (relative @ self.up) / depth
        return np.stack([u, v], axis=1)

    def sees(self, point: np.ndarray, normal: np.ndarray) -> bool:
        return float(normal @ (self.position - point)) > 0


@dataclass(frozen=True)
class Job:
    target: Path
    car_id: str
    car: Car
    studio: Studio
    seed: int
    index: int  # of the car; (seed, index, view) seeds everything random in this photo
    view: int
    width: int
    height: int
    jpeg_quality: int


def generate(
    target: Path,
    cars: int,
    width: int = 1918,
    height: int = 1280,
    seed: int = 42,
    jpeg_quality: int = 90,
    workers: int | None = None,
) -> None:
    """Write `cars` cars x 16 views: target/train/<car>_<NN>.jpg (RGB JPEG) and
    target/train_masks/<car>_<NN>_mask.gif (palette GIF, indices 0/1). The arguments are params.yaml's
    `download.synthetic.*` and `seed`, checked by its schema."""
    jobs = [
        Job(
            Path(target),
            car_id,
            sample_car(seed, index),
            sample_studio(seed, index),
            seed,
            index,
            view,
            width,
            height,
            jpeg_quality,
        )
        for index, car_id in enumerate(car_ids(seed, cars))
        for view in range(1, VIEWS_PER_CAR + 1)
    ]
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    if workers == 1:
        for job in jobs:
            write_pair(job)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(write_pair, jobs, chunksize=4))


def car_ids(seed: int, cars: int) -> list[str]:
    """`cars` distinct 12-hex-digit ids, like Kaggle's, drawn from the seed."""
    rng = stream(seed, IDS_STREAM)
    ids: dict[str, None] = {}
    while len(ids) < cars:
        ids[rng.bytes(6).hex()] = None
    return list(ids)


def stream(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def sample_car(seed: int, index: int) -> Car:
    rng = stream(seed, CAR_STREAM, index)
    paint = np.clip(np.array(PAINTS[rng.integers(len(PAINTS))]) + rng.uniform(-12, 12, 3), 0, 255)
    length, width = rng.uniform(3.9, 5.0), rng.uniform(1.72, 1.95)
    clearance = rng.uniform(0.14, 0.26)
    belt = clearance + rng.uniform(0.62, 0.82)
    rear_radius = rng.uniform(0.15, 0.32)
    screen_base = length / 2 - length * rng.uniform(0.22, 0.3)
    rear_base = -length / 2 + max(length * rng.uniform(0.03, 0.18), rear_radius + 0.05)
    return Car(
        paint=tuple(paint.tolist()),
        length=length,
        width=width,
        clearance=clearance,
        belt=belt,
        hood_drop=rng.uniform(0.04, 0.12),
        roof=belt + rng.uniform(0.42, 0.6),
        front_radius=rng.uniform(0.2, 0.35),
        rear_radius=rear_radius,
        screen_base=screen_base,
        screen_top=screen_base - rng.uniform(0.55, 0.85),
        rear_top=rear_base + rng.uniform(0.12, 0.55),
        rear_base=rear_base,
        roof_radii=(rng.uniform(0.15, 0.3), rng.uniform(0.15, 0.35)),
        tumblehome=rng.uniform(0.1, 0.2),
        wheel_radius=rng.uniform(0.3, 0.37),
        wheelbase=length * rng.uniform(0.57, 0.63),
    )


def sample_studio(seed: int, index: int) -> Studio:
    rng = stream(seed, STUDIO_STREAM, index)
    wall = rng.uniform(226, 242) + rng.uniform(-3, 3, 3)
    return Studio(wall=tuple(wall.tolist()), floor=tuple((wall - rng.uniform(10, 24)).tolist()))


def write_pair(job: Job) -> None:
    rng = stream(job.seed, VIEW_STREAM, job.index, job.view)
    photo, mask = render(job.car, job.studio, job.view, rng, job.width, job.height)
    name = image_id(job.car_id, job.view)
    atomic_write(
        image_path(job.target, name),
        lambda tmp: Image.fromarray(photo).save(tmp, format="JPEG", quality=job.jpeg_quality),
    )
    write_mask_gif(mask_path(job.target, name), mask)


def render(
    car: Car, studio: Studio, view: int, rng: np.random.Generator, width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """The photo (H, W, 3 uint8) and its mask (H, W uint8 in {0, 1}) of one view."""
    camera = studio_camera(width, height)
    turn = turntable((view - 1) * math.pi / 8 + math.radians(rng.uniform(-1.0, 1.0)))
    layer = draw_car(car, turn, camera, (width, height))
    photo = studio_background(studio, width, height).copy()
    cast_shadow(photo, car, turn, camera)
    paint_car(photo, layer)
    photo += sensor_noise(rng, width, height)[..., None]
    mask = (np.asarray(layer.getchannel("A")) > 0).astype(np.uint8)
    return np.clip(photo, 0, 255).astype(np.uint8), mask


def studio_camera(width: int, height: int) -> Camera:
    """A fixed camera a little above the car, framing it like Carvana's photo booth."""
    position = np.array([CAMERA_DISTANCE, 0.0, CAMERA_HEIGHT])
    forward = np.array([0.0, 0.0, CAMERA_AIM]) - position
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    frame = min(width, height * 1918 / 1280)  # frames of another shape still fit the whole car
    return Camera(position, right, np.cross(right, forward), forward, FOCAL * frame, (width / 2, height * 0.52))


def turntable(angle: float) -> np.ndarray:
    """Rotation about the vertical axis; angle 0 shows the car's front to the camera."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def draw_car(car: Car, turn: np.ndarray, camera: Camera, size: tuple[int, int]) -> Image.Image:
    """The car alone on a transparent RGBA layer; alpha is 255 exactly where it was drawn."""
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    # Painter's order: wheels peek out under the body, except on a flank turned to the camera, where
    # they sit in front of it. The cabin comes after the body: from above, the body never hides it.
    camera_direction = camera.position / np.linalg.norm(camera.position)
    flank = float((turn @ np.array([0.0, 1.0, 0.0])) @ camera_direction)
    wheels = car_wheels(car)
    for wheel in wheels:
        if wheel.side * flank <= NEAR_FLANK:
            draw_wheel(draw, wheel, turn, camera)
    for face in car_faces(car):
        draw_face(draw, face, turn, camera)
    for wheel in wheels:
        if wheel.side * flank > NEAR_FLANK:
            draw_wheel(draw, wheel, turn, camera)
    return layer


def draw_face(draw: ImageDraw.ImageDraw, face: Face, turn: np.ndarray, camera: Camera) -> None:
    points, normal = face.points @ turn.T, turn @ face.normal
    if camera.sees(points.mean(axis=0), normal):
        fill_polygon(draw, camera.project(points), shade(face.colour, normal, face.gloss))


def draw_wheel(draw: ImageDraw.ImageDraw, wheel: Wheel, turn: np.ndarray, camera: Camera) -> None:
    """The tyre's outline, then rim and hub if its outer face is turned to the camera."""
    outer, inner = wheel_circle(wheel, 1.0, 0.0), wheel_circle(wheel, 1.0, wheel.width)
    tread = convex_hull(camera.project(np.vstack([outer, inner]) @ turn.T))
    normal = turn @ np.array([0.0, wheel.side, 0.0])
    fill_polygon(draw, tread, shade(TYRE, normal, 0.05))
    if camera.sees(turn @ wheel.centre, normal):
        for scale, colour in ((0.62, RIM), (0.22, HUB)):
            fill_polygon(draw, camera.project(wheel_circle(wheel, scale, 0.0) @ turn.T), shade(colour, normal, 0.2))


def fill_polygon(draw: ImageDraw.ImageDraw, pixels: np.ndarray, colour: Colour) -> None:
    draw.polygon([tuple(p) for p in pixels.tolist()], fill=tuple(round(c) for c in colour) + (255,))


def shade(colour: Colour, normal: np.ndarray, gloss: float) -> Colour:
    """Diffuse key light plus a glossy reflection of the ceiling lights on upward faces."""
    lit = np.array(colour) * (0.5 + 0.55 * max(0.0, float(normal @ LIGHT)))
    lit += gloss * max(0.0, float(normal[2])) ** 2 * (255 - lit)
    return tuple(np.clip(lit, 0, 255).tolist())


def paint_car(photo: np.ndarray, layer: Image.Image) -> None:
    """Copy the car's pixels onto the photo, graded from its lit roof down to its sills in shade."""
    left, top, right, bottom = box = layer.getbbox()
    car = layer.crop(box)
    drawn = (np.asarray(car.getchannel("A")) > 0)[..., None]
    region = photo[top:bottom, left:right]
    np.copyto(region, np.asarray(car.convert("RGB")), where=drawn)
    grade = np.linspace(1.06, 0.86, bottom - top, dtype=np.float32)[:, None, None]
    np.multiply(region, grade, out=region, where=drawn)


def sensor_noise(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Grey-level noise of standard deviation NOISE (uniform: several times faster to draw than normal)."""
    noise = rng.random((height, width), dtype=np.float32) - 0.5
    noise *= NOISE * math.sqrt(12)
    return noise


@functools.lru_cache(maxsize=2)
def car_faces(car: Car) -> tuple[Face, ...]:
    """Body, its lights, then cabin and windows: the order they are painted in. Shared by the views of one car."""
    return (*body_faces(car), *cabin_faces(car))


def body_faces(car: Car) -> list[Face]:
    half = car.length / 2
    profile = rounded_polygon(
        np.array([[-half, car.clearance], [half, car.clearance], [half, car.belt - car.hood_drop], [-half, car.belt]]),
        [0.1, 0.12, car.front_radius, car.rear_radius],
    )
    faces = prism(profile, lambda z: np.full_like(z, car.width / 2), car.paint, 0.25)
    return faces + lights(car)


def lights(car: Car) -> list[Face]:
    """Head lights and grille on the front, tail lights on the back, just proud of the body."""
    half, w = car.length / 2 + 0.005, car.width / 2
    front_top = car.belt - car.hood_drop - car.front_radius
    rear_top = car.belt - car.rear_radius
    faces = []
    for y0, y1 in ((w - 0.36, w - 0.07), (-w + 0.07, -w + 0.36)):
        faces.append(panel(half, (y0, y1), (front_top - 0.1, front_top + 0.03), HEADLIGHT, 0.1))
        faces.append(panel(-half, (y0, y1), (rear_top - 0.12, rear_top), TAILLIGHT, 0.1))
    faces.append(panel(half, (-w + 0.42, w - 0.42), (front_top - 0.16, front_top - 0.02), GRILLE, 0.05))
    return faces


def panel(x: float, ys: tuple[float, float], zs: tuple[float, float], colour: Colour, gloss: float) -> Face:
    """A flat rectangle at x, facing forward (x > 0) or backward (x < 0)."""
    points = np.array([[x, ys[0], zs[0]], [x, ys[1], zs[0]], [x, ys[1], zs[1]], [x, ys[0], zs[1]]])
    return Face(points, np.array([math.copysign(1.0, x), 0.0, 0.0]), colour, gloss)


def cabin_faces(car: Car) -> list[Face]:
    """The greenhouse: painted roof and pillars, glass windscreen, rear and side windows."""
    half = car.length / 2

    def hood_line(x: float) -> float:  # the body's top edge, on which the cabin stands
        return car.belt - car.hood_drop * (x + half) / car.length

    corners = np.array(
        [
            [car.rear_base, hood_line(car.rear_base)],
            [car.screen_base, hood_line(car.screen_base)],
            [car.screen_top, car.roof],
            [car.rear_top, car.roof],
        ]
    )
    profile = rounded_polygon(corners, [0.0, 0.0, *car.roof_radii])

    def half_width(z: np.ndarray) -> np.ndarray:
        return car.width / 2 - 0.05 - car.tumblehome * (z - car.belt) / (car.roof - car.belt)

    faces = prism(profile, half_width, car.paint, 0.25)
    glass = [window(face) for face in faces if is_window(face)]
    pillar_x = (car.screen_top + car.rear_top) / 2
    sill = hood_line(pillar_x) + 0.02
    pillar = np.array(
        [[pillar_x - 0.05, sill], [pillar_x + 0.05, sill], [pillar_x + 0.05, car.roof], [pillar_x - 0.05, car.roof]]
    )
    side_window = shrink(profile, 0.86, 0.7)
    for side in (1, -1):
        cap = next(face for face in faces if face.normal[1] * side > 0.5)
        glass.append(Face(lift(side_window, half_width, side), cap.normal, GLASS, 0.3))
        glass.append(Face(lift(pillar, half_width, side), cap.normal, cap.colour, 0.25))
    return faces + glass


def is_window(face: Face) -> bool:
    """The windscreen and rear window: the long sloped faces of the cabin, not its short rounded edges."""
    sloped = abs(face.normal[1]) < 0.5 and -0.3 < face.normal[2] < 0.97
    return sloped and float(np.linalg.norm(face.points[0] - face.points[1])) > 0.25


def window(face: Face) -> Face:
    """A glass pane inset in a painted face, leaving a frame."""
    centre = face.points.mean(axis=0)
    return Face(centre + 0.88 * (face.points - centre), face.normal, GLASS, 0.3)


def car_wheels(car: Car) -> list[Wheel]:
    y = car.width / 2 - 0.02
    return [
        Wheel(np.array([x, side * y, car.wheel_radius]), car.wheel_radius, 0.22, side)
        for x in (car.wheelbase / 2, -car.wheelbase / 2)
        for side in (1, -1)
    ]


def wheel_circle(wheel: Wheel, scale: float, inset: float, points: int = 28) -> np.ndarray:
    """Points of a circle of the wheel, `inset` metres in from its outer face."""
    angles = np.linspace(0, 2 * math.pi, points, endpoint=False)
    circle = np.stack([np.cos(angles), np.zeros(points), np.sin(angles)], axis=1) * wheel.radius * scale
    return circle + wheel.centre - np.array([0.0, wheel.side * inset, 0.0])


def cast_shadow(photo: np.ndarray, car: Car, turn: np.ndarray, camera: Camera) -> None:
    """Darken the floor softly around the car's footprint (later mostly covered by the car itself)."""
    height, width = photo.shape[:2]
    step = max(1, round(width / 240))  # blur at low resolution: a shadow has no fine detail
    small = Image.new("L", (math.ceil(width / step), math.ceil(height / step)), 0)
    x, y = car.length / 2 * 1.04, car.width / 2 * 1.12
    footprint = np.array([[x, y, 0.0], [-x, y, 0.0], [-x, -y, 0.0], [x, -y, 0.0]]) @ turn.T
    ImageDraw.Draw(small).polygon([tuple(p) for p in (camera.project(footprint) / step).tolist()], fill=255)
    small = small.filter(ImageFilter.GaussianBlur(0.012 * width / step))
    left, top, right, bottom = (min(edge * step, limit) for edge, limit in zip(small.getbbox(), (width, height) * 2))
    shadow = small.resize(
        (right - left, bottom - top), Image.BILINEAR, box=(left / step, top / step, right / step, bottom / step)
    )
    photo[top:bottom, left:right] *= 1 - SHADOW_STRENGTH / 255 * np.asarray(shadow, dtype=np.float32)[..., None]


@functools.lru_cache(maxsize=2)
def studio_background(studio: Studio, width: int, height: int) -> np.ndarray:
    """Wall above the floor line, floor below, joined softly with a faint seam; light vignette. Read-only."""
    floor_line = float(studio_camera(width, height).project(np.array([[-WALL_DISTANCE, 0.0, 0.0]]))[0, 1])
    rows = np.arange(height, dtype=np.float32)
    wall_light = 0.92 + 0.08 * np.clip(rows / floor_line, 0, 1)
    floor_light = 1.0 - 0.1 * np.clip((rows - floor_line) / (height - floor_line), 0, 1)
    blend = np.clip((rows - floor_line) / (0.03 * height) + 0.5, 0, 1)[:, None]
    seam = 1 - 0.04 * np.exp(-(((rows - floor_line) / (0.004 * height)) ** 2))
    profile = (
        (1 - blend) * np.array(studio.wall) * wall_light[:, None]
        + blend * np.array(studio.floor) * floor_light[:, None]
    ) * seam[:, None]
    columns = 1 - 0.07 * ((np.arange(width, dtype=np.float32) - width / 2) / (width / 2)) ** 2
    background = profile.astype(np.float32)[:, None, :] * columns[None, :, None]
    background.flags.writeable = False  # shared by the views of one car
    return background


def prism(
    profile: np.ndarray, half_width: Callable[[np.ndarray], np.ndarray], colour: Colour, gloss: float
) -> list[Face]:
    """A convex solid: the side profile (x, z) extruded across the car, its width varying with height."""
    left, right = lift(profile, half_width, 1), lift(profile, half_width, -1)
    inside = np.vstack([left, right]).mean(axis=0)
    quads = [np.array([left[i], left[i - 1], right[i - 1], right[i]]) for i in range(len(profile))]
    return [outward_face(points, inside, colour, gloss) for points in [left, right[::-1], *quads]]


def lift(profile: np.ndarray, half_width: Callable[[np.ndarray], np.ndarray], side: int) -> np.ndarray:
    """Profile points (x, z) placed on one flank of the car (side +1 left, -1 right)."""
    x, z = profile[:, 0], profile[:, 1]
    return np.stack([x, side * half_width(z), z], axis=1)


def outward_face(points: np.ndarray, inside: np.ndarray, colour: Colour, gloss: float) -> Face:
    normal = np.cross(points - points.mean(axis=0), np.roll(points, -1, axis=0) - points.mean(axis=0)).sum(axis=0)
    normal /= np.linalg.norm(normal)
    if normal @ (points.mean(axis=0) - inside) < 0:
        normal = -normal
    return Face(points, normal, colour, gloss)


def rounded_polygon(corners: np.ndarray, radii: list[float], steps: int = 6) -> np.ndarray:
    """A convex polygon with each corner replaced by a curve starting `radius` along its two edges."""
    points = []
    for i, (corner, radius) in enumerate(zip(corners, radii)):
        if radius <= 0:
            points.append(corner)
            continue
        before, after = corners[i - 1] - corner, corners[(i + 1) % len(corners)] - corner
        start = corner + before / np.linalg.norm(before) * min(radius, np.linalg.norm(before) / 2.01)
        end = corner + after / np.linalg.norm(after) * min(radius, np.linalg.norm(after) / 2.01)
        t = np.linspace(0, 1, steps)[:, None]
        points.extend((1 - t) ** 2 * start + 2 * (1 - t) * t * corner + t**2 * end)  # quadratic Bezier
    return np.array(points)


def shrink(profile: np.ndarray, x_scale: float, z_scale: float) -> np.ndarray:
    centre = profile.mean(axis=0)
    return centre + (profile - centre) * np.array([x_scale, z_scale])


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Andrew's monotone chain; the outline of a projected wheel."""
    ordered = sorted(map(tuple, points.tolist()))

    def half_hull(sequence: list[tuple[float, float]]) -> list[tuple[float, float]]:
        hull: list[tuple[float, float]] = []
        for p in sequence:
            while len(hull) >= 2 and cross(hull[-2], hull[-1], p) <= 0:
                hull.pop()
            hull.append(p)
        return hull[:-1]

    return np.array(half_hull(ordered) + half_hull(ordered[::-1]))


def cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
