package main

import (
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
	"golang.org/x/image/vector"
)

// writePNG rasterizes the scene: lines and shapes through x/image/vector
// with anti-aliasing, text in the 7x13 bitmap font.
func writePNG(w io.Writer, s *scene) error {
	img := image.NewRGBA(image.Rect(0, 0, int(s.w), int(s.h)))
	r := &raster{img: img}
	for _, p := range s.prims {
		switch p.kind {
		case primLine:
			pts := p.pts
			if p.dash {
				pts = nil
				for i := 1; i < len(p.pts); i++ {
					r.dashed(p.pts[i-1], p.pts[i], p.width, p.color)
				}
			}
			for i := 1; i < len(pts); i++ {
				r.segment(pts[i-1], pts[i], p.width, p.color)
			}
		case primRect:
			a, c := p.pts[0], p.pts[1]
			rect := image.Rect(int(a.x), int(a.y), int(math.Ceil(c.x)), int(math.Ceil(c.y)))
			draw.Draw(img, rect, image.NewUniform(premultiply(p.color)), image.Point{}, draw.Over)
		case primDiamond:
			q, d := p.pts[0], p.width
			r.polygon(p.color, pt{q.x, q.y - d}, pt{q.x + d, q.y}, pt{q.x, q.y + d}, pt{q.x - d, q.y})
		case primText:
			r.text(p.pts[0], p.anchor, p.text, p.color)
		case primTextVert:
			r.textVertical(p.pts[0], p.text, p.color)
		}
	}
	return png.Encode(w, img)
}

type raster struct {
	img *image.RGBA
	z   vector.Rasterizer
}

// premultiply turns a colour with alpha into the premultiplied form
// image/color expects of RGBA values.
func premultiply(c color.RGBA) color.RGBA {
	a := uint32(c.A)
	return color.RGBA{uint8(uint32(c.R) * a / 255), uint8(uint32(c.G) * a / 255), uint8(uint32(c.B) * a / 255), c.A}
}

// polygon fills a closed path. The rasterizer covers only the path's
// bounding box, clipped to the image, so small shapes stay cheap.
func (r *raster) polygon(c color.RGBA, pts ...pt) {
	minX, minY, maxX, maxY := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, p := range pts {
		minX, minY = min(minX, p.x), min(minY, p.y)
		maxX, maxY = max(maxX, p.x), max(maxY, p.y)
	}
	box := image.Rect(int(math.Floor(minX)), int(math.Floor(minY)), int(math.Ceil(maxX))+1, int(math.Ceil(maxY))+1).
		Intersect(r.img.Bounds())
	if box.Empty() {
		return
	}
	r.z.Reset(box.Dx(), box.Dy())
	ox, oy := float64(box.Min.X), float64(box.Min.Y)
	for i, p := range pts {
		x, y := float32(p.x-ox), float32(p.y-oy)
		if i == 0 {
			r.z.MoveTo(x, y)
		} else {
			r.z.LineTo(x, y)
		}
	}
	r.z.ClosePath()
	r.z.Draw(r.img, box, image.NewUniform(premultiply(c)), image.Point{})
}

// segment draws a straight line of the given width as a thin quad.
func (r *raster) segment(a, b pt, width float64, c color.RGBA) {
	dx, dy := b.x-a.x, b.y-a.y
	n := math.Hypot(dx, dy)
	if n == 0 {
		return
	}
	hw := max(width, 1) / 2
	nx, ny := -dy/n*hw, dx/n*hw
	r.polygon(c, pt{a.x + nx, a.y + ny}, pt{b.x + nx, b.y + ny}, pt{b.x - nx, b.y - ny}, pt{a.x - nx, a.y - ny})
}

// dashed draws a line in dashes of 6 pixels with gaps of 4, as the SVG's
// stroke-dasharray.
func (r *raster) dashed(a, b pt, width float64, c color.RGBA) {
	n := math.Hypot(b.x-a.x, b.y-a.y)
	for d := 0.0; d < n; d += 10 {
		e := min(d+6, n)
		r.segment(pt{a.x + (b.x-a.x)*d/n, a.y + (b.y-a.y)*d/n}, pt{a.x + (b.x-a.x)*e/n, a.y + (b.y-a.y)*e/n}, width, c)
	}
}

func (r *raster) drawer(dst draw.Image, c color.RGBA) *font.Drawer {
	return &font.Drawer{Dst: dst, Src: image.NewUniform(c), Face: basicfont.Face7x13}
}

func (r *raster) text(at pt, anchor, s string, c color.RGBA) {
	d := r.drawer(r.img, c)
	x := at.x
	switch w := float64(d.MeasureString(s).Round()); anchor {
	case "middle":
		x -= w / 2
	case "end":
		x -= w
	}
	d.Dot = fixed.P(int(x), int(at.y))
	d.DrawString(s)
}

// textVertical draws s reading upwards, centred on at: drawn flat into a
// scratch image, then copied turned a quarter left.
func (r *raster) textVertical(at pt, s string, c color.RGBA) {
	face := basicfont.Face7x13
	w := font.MeasureString(face, s).Round()
	h := face.Height
	flat := image.NewRGBA(image.Rect(0, 0, w, h))
	d := r.drawer(flat, c)
	d.Dot = fixed.P(0, face.Ascent)
	d.DrawString(s)
	ox, oy := int(at.x)-h/2, int(at.y)-w/2
	for y := range h {
		for x := range w {
			if px := flat.RGBAAt(x, y); px.A > 0 {
				// (x, y) -> (y, w-1-x): a quarter turn anticlockwise.
				r.img.SetRGBA(ox+y, oy+w-1-x, blend(r.img.RGBAAt(ox+y, oy+w-1-x), px))
			}
		}
	}
}

// blend puts premultiplied src over dst.
func blend(dst, src color.RGBA) color.RGBA {
	inv := 255 - uint32(src.A)
	return color.RGBA{
		uint8(uint32(src.R) + uint32(dst.R)*inv/255),
		uint8(uint32(src.G) + uint32(dst.G)*inv/255),
		uint8(uint32(src.B) + uint32(dst.B)*inv/255),
		uint8(uint32(src.A) + uint32(dst.A)*inv/255),
	}
}
