"""Transverse trabeculae of the vertebral generator beyond its horizontal rods (issue 14).

Real vertebral cancellous bone owes its modest degree of anisotropy (MIL DA about 1.5) to
transverse trabeculae of many orientations, horizontal plates and oblique struts, not only
to tilted vertical ones. Two kinds of element, both labelled HORIZONTAL (transverse, so
that "removing the horizontal trabeculae" removes them too), both off by default (a
fraction of 0 draws no random number and adds nothing, so today's specimens are
unchanged):

- oblique struts (``oblique_fraction``): rods from a node of one column to the node one
  level up or down on a neighbouring column (the direction drawn at random), diameter
  th_horizontal times the log-normal factor, bowed like the horizontal ones;
- horizontal plates (``horizontal_plates``): flat triangles through the nodes of three
  mutually neighbouring columns at one node level (the node offsets tilt them), thickness
  th_horizontal times the log-normal factor; a fraction ``plate_holes`` is perforated by a
  round hole near the centroid (radius 30-50 % of the triangle's inradius).

Units: mm. Called from fem.specimen.vertebral._build with its random generator.
"""

from __future__ import annotations

import numpy as np

from fem.specimen.vertebral import HORIZONTAL, bent_rod, perpendicular, plate


def neighbour_triangles(simplices, edges) -> list[tuple[int, int, int]]:
    """Delaunay triangles (column indices) whose three edges are all in ``edges`` (the short
    neighbour pairs), sorted: the sites of horizontal plates."""
    edges = set(edges)
    out = set()
    for t in simplices:
        a, b, c = sorted(int(i) for i in t)
        if {(a, b), (b, c), (a, c)} <= edges:
            out.add((a, b, c))
    return sorted(out)


def add_oblique_struts(p, nodes, edges, rng, add, lognormal, radius, r_h) -> int:
    """Oblique struts on a fraction ``p.oblique_fraction`` of the sites (neighbour pair x
    interval between node levels); returns how many reach into the image."""
    if p.oblique_fraction <= 0:
        return 0
    levels = nodes.shape[1]
    sites = [(e, k) for e in edges for k in range(levels - 1)]
    chosen = rng.permutation(len(sites))[:int(round(p.oblique_fraction * len(sites)))]
    up = rng.uniform(size=len(chosen)) < 0.5
    added = 0
    for c, f, u in zip(chosen, lognormal(len(chosen)), up):
        (i, j), k = sites[c]
        a, b = (nodes[i, k], nodes[j, k + 1]) if u else (nodes[i, k + 1], nodes[j, k])
        bow = perpendicular(rng, b - a, p.curvature * np.linalg.norm(b - a))
        r = radius(r_h, f)
        added += bool(add(HORIZONTAL, [a, b, (a + b) / 2 + bow], r, bent_rod(a, b, bow, r)))
    return added


def add_horizontal_plates(p, nodes, triangles, rng, add, lognormal, radius, t_h) -> tuple[int, int]:
    """Horizontal plates on a fraction ``p.horizontal_plates`` of the sites (neighbour
    triangle x inner node level); returns (plates in the image, perforated ones)."""
    if p.horizontal_plates <= 0:
        return 0, 0
    levels = nodes.shape[1]
    sites = [(t, k) for t in triangles for k in range(1, levels - 1)]
    chosen = rng.permutation(len(sites))[:int(round(p.horizontal_plates * len(sites)))]
    added = holes = 0
    for c, f in zip(chosen, lognormal(len(chosen))):
        (i, j, m), k = sites[c]
        corners = np.array([nodes[i, k], nodes[j, k], nodes[m, k]])
        hole = None
        if rng.uniform() < p.plate_holes:
            sides = np.linalg.norm(corners - np.roll(corners, 1, axis=0), axis=1)
            area = np.linalg.norm(np.cross(corners[1] - corners[0], corners[2] - corners[0])) / 2
            inradius = 2 * area / sides.sum()
            w = rng.dirichlet((8.0, 8.0, 8.0))        # near the centroid
            hole = (w @ corners, rng.uniform(0.3, 0.5) * inradius)
        t = 2 * radius(t_h / 2, f)
        if add(HORIZONTAL, corners, t, plate(corners, t, hole)):
            added += 1
            holes += hole is not None
    return added, holes
