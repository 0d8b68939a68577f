"""The peer: face_recognition (dlib) detection + encoding per face, on the given images.

Run by bench/run.py with whichever interpreter has ``face_recognition`` (the
``bench`` extra, or a separate dlib virtual environment); it imports nothing from
siamgui. Prints one JSON line: per-round medians of detect, encode and total ms.

    python bench/peer_face.py ROUNDS IMAGE [IMAGE ...]
"""

import json
import statistics
import sys
import time


def main() -> int:
    import face_recognition

    rounds = int(sys.argv[1])
    images = sys.argv[2:]
    loaded = [face_recognition.load_image_file(p) for p in images]
    # warm-up: model files load on first use
    locs = face_recognition.face_locations(loaded[0])
    face_recognition.face_encodings(loaded[0], locs)
    per = max(1, len(loaded) // rounds)
    det, enc, tot, faces = [], [], [], 0
    for r in range(rounds):
        d_ms, e_ms = [], []
        for img in loaded[r * per:(r + 1) * per] or loaded[:per]:
            t0 = time.perf_counter()
            locs = face_recognition.face_locations(img)  # HOG detector, the library default
            t1 = time.perf_counter()
            # encode the first face found, or the whole image when none was found
            face_recognition.face_encodings(img, locs[:1] or [(0, img.shape[1], img.shape[0], 0)])
            t2 = time.perf_counter()
            faces += bool(locs)
            d_ms.append((t1 - t0) * 1000)
            e_ms.append((t2 - t1) * 1000)
        det.append(statistics.median(d_ms))
        enc.append(statistics.median(e_ms))
        tot.append(statistics.median([a + b for a, b in zip(d_ms, e_ms)]))
    print(json.dumps({"detect_ms": det, "encode_ms": enc, "total_ms": tot, "faces_found": faces,
                      "images": rounds * per}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
