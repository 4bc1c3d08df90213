"""Import annotations (COCO, LabelMe, CVAT for images 1.1, existing masks) as a ``folders`` data set.

``python -m training.labels import --format coco --annotations instances.json --images frames/ --out data/mine``
writes ``data/mine/images`` (the images, copied) and ``data/mine/masks`` (single-channel PNG, 255 =
instrument), which ``python -m training.train`` and ``python -m training.evaluate`` read.
"""

from training.labels.importer import FORMATS, ImportSummary, import_labels
from training.labels.model import ImageLabels, LabelImportError, Region

__all__ = ["FORMATS", "ImageLabels", "ImportSummary", "LabelImportError", "Region", "import_labels"]
