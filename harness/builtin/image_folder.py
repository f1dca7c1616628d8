"""The ``imagefolder`` dataset: a folder of images with one subfolder per class, read one file at a time.

``root/<class>/<image>`` as torchvision's ImageFolder lays it out: classes are the subfolder names in
sorted order (label 0 is the first), images any format Pillow opens. The held-out split is
``test_root`` (the same class folders) or a stratified ``test_fraction`` of ``root`` chosen by the
seed. Nothing is held in memory: each batch opens its files, so a validation set of any size is
evaluated in constant memory. Without a model's own preprocessing (a torchvision weights'
transforms, an image processor), an image becomes a float tensor in [0, 1], channels first, resized
to ``image_size`` when given.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from harness.plugin.data import Split, files_fingerprint
from harness.plugin.types import Dataset, DatasetSplits, Params, SuitePath

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


class ImageFolderParams(Params):
    root: SuitePath = Field(description="folder with one subfolder of images per class (relative to the suite file)")
    test_root: SuitePath | None = Field(None, description="held-out images in the same class folders "
                                                          "(default: test_fraction of root)")
    test_fraction: float = Field(0.25, gt=0.0, lt=1.0, description="held-out share of root, stratified, "
                                                                   "when there is no test_root")
    image_size: list[int] | None = Field(None, min_length=1, max_length=2,
                                         description="resize to [size] or [height, width] (default: as stored; "
                                                     "images of different sizes then cannot share a batch)")
    mode: Literal["RGB", "L"] = Field("RGB", description="colour mode images are converted to (L: grey)")
    train_limit: int | None = Field(None, ge=1, description="at most this many training images (a seeded, "
                                                            "stratified choice)")
    test_limit: int | None = Field(None, ge=1, description="at most this many held-out images (likewise)")

    @field_validator("root", "test_root")
    @classmethod
    def _folder(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_dir():
            raise ValueError(f"no such folder {value} (expected <folder>/<class>/<image>)")
        return value

    @model_validator(mode="after")
    def _sizes(self) -> ImageFolderParams:
        if self.image_size is not None and any(s < 1 for s in self.image_size):
            raise ValueError(f"image_size must be positive, got {self.image_size}")
        return self


def scan(root: Path, classes: list[str] | None = None) -> tuple[list[str], list[Path], list[int]]:
    """(class names, image files, labels) of a class-per-folder tree; ``classes`` fixes the names and
    their order (a test folder uses the training folder's)."""
    if not root.is_dir():
        raise ValueError(f"imagefolder: {root} is not a folder")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if classes is None:
        classes = found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise ValueError(f"imagefolder: {root} has class folders {unknown} that the training folder does not")
    if not classes:
        raise ValueError(f"imagefolder: {root} has no class subfolders (expected root/<class>/<image>)")
    files, labels = [], []
    for label, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in EXTENSIONS and path.is_file():
                files.append(path)
                labels.append(label)
    if not files:
        raise ValueError(f"imagefolder: no images under {root} (looked for {', '.join(EXTENSIONS)})")
    return classes, files, labels


class ImageFolderSplit(Split):
    """Image files with their labels; a sample is read (and converted to ``mode``) when asked for."""

    def __init__(self, files: list[Path], labels: list[int], mode: str, size: tuple[int, int] | None) -> None:
        self.files, self._labels, self.mode, self.size = files, labels, mode, size

    def __len__(self) -> int:
        return len(self.files)

    def sample(self, index: int) -> tuple[Any, int | None]:
        from PIL import Image

        with Image.open(self.files[index]) as image:
            return image.convert(self.mode), self._labels[index]

    @property
    def labels(self) -> Any:
        import torch

        return torch.as_tensor(self._labels, dtype=torch.int64)

    @property
    def has_labels(self) -> bool:
        return bool(self.files)

    def collate(self, raw: list[Any]) -> Any:
        return images_to_tensor(raw, self.size)


def images_to_tensor(images: list[Any], size: tuple[int, int] | None = None) -> Any:
    """Pillow images as one float tensor (N, C, H, W) in [0, 1], resized to ``size`` (height, width) when given."""
    import numpy as np
    import torch

    arrays = []
    for image in images:
        if size is not None and image.size != (size[1], size[0]):
            from PIL import Image

            image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        a = np.asarray(image, dtype=np.float32) / 255.0
        arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"images of different sizes {sorted(shapes)} in one batch; give image_size to resize them")
    return torch.from_numpy(np.stack(arrays))


def _stratified(labels: list[int], fraction: float | None, limit: int | None, seed: int,
                salt: int) -> tuple[list[int], list[int]]:
    """(chosen, rest) indices: per class, a seeded shuffle; ``fraction`` of each class chosen (at least
    one where the class has two or more images), then at most ``limit`` overall, spread over classes."""
    import torch

    g = torch.Generator().manual_seed(seed * 1_000_003 + salt)
    by_class: dict[int, list[int]] = {}
    for i, c in enumerate(labels):
        by_class.setdefault(c, []).append(i)
    chosen: list[int] = []
    rest: list[int] = []
    for c in sorted(by_class):
        idx = [by_class[c][j] for j in torch.randperm(len(by_class[c]), generator=g).tolist()]
        k = len(idx) if fraction is None else max(1 if len(idx) > 1 else 0, round(len(idx) * fraction))
        chosen += idx[:k]
        rest += idx[k:]
    if limit is not None and len(chosen) > limit:
        order = torch.randperm(len(chosen), generator=g).tolist()
        chosen = [chosen[j] for j in sorted(order[:limit])]
    return sorted(chosen), sorted(rest)


def load_image_folder(params: ImageFolderParams, seed: int) -> DatasetSplits:
    size = None
    if params.image_size is not None:
        size = (params.image_size[0], params.image_size[-1])
    classes, files, labels = scan(Path(params.root))
    if params.test_root is not None:
        _, test_files, test_labels = scan(Path(params.test_root), classes)
        train_idx = list(range(len(files)))
        test_idx = list(range(len(test_files)))
    else:
        test_idx, train_idx = _stratified(labels, params.test_fraction, None, seed, salt=1)
        test_files, test_labels = files, labels
    if params.train_limit is not None:
        keep, _ = _stratified([labels[i] for i in train_idx], None, params.train_limit, seed, salt=2)
        train_idx = [train_idx[i] for i in keep]
    if params.test_limit is not None:
        keep, _ = _stratified([test_labels[i] for i in test_idx], None, params.test_limit, seed, salt=3)
        test_idx = [test_idx[i] for i in keep]
    train = ImageFolderSplit([files[i] for i in train_idx], [labels[i] for i in train_idx], params.mode, size)
    test = ImageFolderSplit([test_files[i] for i in test_idx], [test_labels[i] for i in test_idx], params.mode, size)
    return DatasetSplits(train=train, test=test, num_classes=len(classes))


def folder_fingerprint(params: ImageFolderParams) -> str:
    """Every file's path, size and time under ``root`` and ``test_root`` (no image is opened): a model
    trained on the folder is trained again when images are added, removed or replaced."""
    files = [(path, str(path.relative_to(root))) for root in (params.root, params.test_root) if root is not None
             for path in sorted(Path(root).rglob("*")) if path.suffix.lower() in EXTENSIONS]
    return files_fingerprint([f for f, _ in files], [name for _, name in files])


IMAGE_FOLDER = Dataset(
    name="imagefolder",
    description="a folder of images, one subfolder per class, read file by file (test_root or a stratified split)",
    load=load_image_folder,
    params=ImageFolderParams,
    fingerprint=folder_fingerprint,
)
