// Package shapes is a built-in, seeded image–text world: small RGB images of
// coloured shapes on textured backgrounds, each with several captions, so
// that CLIP training, evaluation and MoPE pruning run anywhere with nothing
// downloaded.
//
// # The world
//
// An image (default 64×64) holds one to three objects. An object has a
// shape (circle, square, triangle, star, cross, ring, diamond, heart,
// hexagon, crescent), a colour (red, green, blue, yellow, purple, orange,
// white, black, pink, cyan, brown, gray), a size (small: radius 8.5–11% of
// the image; large: 16–19%) and a position on a 3×3 grid (left/center/right
// × top/middle/bottom; centres are never placed near a grid line, so the
// position is unambiguous). Objects never overlap and never touch the
// border. Pairs of objects may stand in a spatial relation (left of, right
// of, above, below, next to; see Relations for the exact geometry).
//
// Backgrounds are plain, noisy, gradients, stripes or checkerboards. Plain
// and noisy ones sometimes have a nameable colour ("on a blue background");
// the rest use muted tints. Object colours always contrast with the
// background (RGB distance at least 110, and never the background's named
// colour). Shapes are rendered with S×S supersampling (default 4×4) in
// integer arithmetic, so small objects keep recognisable outlines and the
// pixels are identical on every platform; uniform per-pixel noise is added
// on top.
//
// # Captions
//
// Each image has Config.CaptionsPerImage captions (default 5), each from a
// different template: "a photo of …", "an image showing …", "there is …",
// "two objects: …", "a red circle left of a blue square", "a red circle on
// the left and …", "… on a striped background", bare lists, and colourless
// lists; with synonyms ("disk", "plus sign", "donut", "rhombus", "crescent
// moon", "grey", "violet", "turquoise", "little", "big", …) and plurals
// ("two small green stars"). Captions are faithful: every stated object,
// count, attribute, position, relation and background property is true of
// the scene. Some captions leave attributes out, so they are less specific
// than others.
//
// # Difficulty
//
// Retrieval is not trivially solved: with probability HardNegativeProb an
// odd-indexed example is a hard negative of the example before it (same
// background and layout, exactly one change: one object's colour, shape or
// size, or two objects swapping places), several objects share an image,
// objects may repeat (DuplicateProb), small shapes differ by a few pixels
// (small hexagon vs circle), and backgrounds are textured and noisy.
//
// # Knobs (Config; DefaultConfig gives the defaults)
//
//	Seed                 1      the world; examples depend only on (Seed, split, index)
//	ImageSize            64     pixels per side (16–1024)
//	Supersample          4      anti-aliasing samples per pixel per axis (1–15)
//	MinObjects           1      objects per image, drawn uniformly …
//	MaxObjects           3      … up to this (at most 5)
//	Shapes               10     shape vocabulary: the first N of AllShapes
//	Colors               12     colour vocabulary: the first N of AllColors (at least 3)
//	RelationProb         0.5    chance a multi-object scene is built around a relation
//	DuplicateProb        0.15   chance an object repeats the previous one (plurals)
//	HardNegativeProb     0.3    chance an odd example is a one-change twin of the one before
//	Backgrounds          all    background styles to draw from
//	NamedBackgroundProb  0.5    chance a plain/noisy background has a nameable colour
//	BackgroundNoise      0.2    amplitude of noisy backgrounds (fraction of 255)
//	Noise                0.03   per-pixel noise over the whole image (fraction of 255)
//	CaptionsPerImage     5
//	TrainSize …          20000 train, 1000 val, 1000 test, 1000 calib (default n per split)
//
// # Splits and determinism
//
// The splits are "train", "val", "test" and "calib" (for MoPE scoring).
// Example i of a split depends only on (Config, split, i): Generate and
// GenerateRange may be called for any range, in any order, in parallel, and
// give bit-identical images and captions (the random generator is defined
// in this package, not taken from math/rand, and rendering avoids
// platform-dependent floating point). Different splits and seeds give
// different content. Generation runs at several thousand images per second
// per core.
//
// Export writes a split as PNG files plus a Karpathy-style dataset.json,
// which dataset.Load reads back.
package shapes
