"""A toy PascalParts annotation for tests: one 'cat' whose mask holds two parts (the eyes)."""
import numpy as np


def two_eyed_cat(height: int = 24, width: int = 32) -> dict:
    """The content of an ``Annotations_Part/<id>.mat`` (``scipy.io.savemat`` it): one object, class 'cat'
    (index 8), parts 'leye' (rows 4-19, columns 4-15) and 'reye' (rows 4-19, columns 16-27)."""
    left, right = np.zeros((height, width), np.uint8), np.zeros((height, width), np.uint8)
    left[4:20, 4:16], right[4:20, 16:28] = 1, 1
    parts = np.zeros((1, 2), dtype=[("part_name", "O"), ("mask", "O")])
    parts[0, 0]["part_name"], parts[0, 0]["mask"], parts[0, 1]["part_name"], parts[0, 1]["mask"] = \
        "leye", left, "reye", right
    objects = np.zeros((1, 1), dtype=[("class", "O"), ("class_ind", "O"), ("mask", "O"), ("parts", "O")])
    objects[0, 0]["class"], objects[0, 0]["class_ind"], objects[0, 0]["mask"], objects[0, 0]["parts"] = \
        "cat", 8, left | right, parts
    return {"anno": {"objects": objects}}
