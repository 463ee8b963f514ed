package main

import (
	"fmt"
	"html"
	"image/color"
	"io"
	"strings"
)

// writeSVG writes the scene as SVG. Every element carries its class, so
// the picture can be styled, and tests can count what it marks.
func writeSVG(w io.Writer, s *scene) error {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" font-family="monospace" font-size="12">`+"\n",
		s.w, s.h, s.w, s.h)
	for _, p := range s.prims {
		open, close := "", ""
		if p.title != "" {
			open, close = "<g>", "<title>"+html.EscapeString(p.title)+"</title></g>"
		}
		b.WriteString(open)
		switch p.kind {
		case primLine:
			var pts []string
			for _, q := range p.pts {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", q.x, q.y))
			}
			dash := ""
			if p.dash {
				dash = ` stroke-dasharray="6,4"`
			}
			fmt.Fprintf(&b, `<polyline class="%s" points="%s" fill="none" stroke="%s"%s stroke-width="%g"%s/>`,
				p.class, strings.Join(pts, " "), rgb(p.color), opacity("stroke", p.color), p.width, dash)
		case primRect:
			a, c := p.pts[0], p.pts[1]
			fmt.Fprintf(&b, `<rect class="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"%s/>`,
				p.class, a.x, a.y, c.x-a.x, c.y-a.y, rgb(p.color), opacity("fill", p.color))
		case primDiamond:
			q, r := p.pts[0], p.width
			fmt.Fprintf(&b, `<polygon class="%s" points="%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="%s"/>`,
				p.class, q.x, q.y-r, q.x+r, q.y, q.x, q.y+r, q.x-r, q.y, rgb(p.color))
		case primText:
			q := p.pts[0]
			fmt.Fprintf(&b, `<text class="%s" x="%.1f" y="%.1f" text-anchor="%s" fill="%s">%s</text>`,
				p.class, q.x, q.y, p.anchor, rgb(p.color), html.EscapeString(p.text))
		case primTextVert:
			q := p.pts[0]
			fmt.Fprintf(&b, `<text class="%s" x="%.1f" y="%.1f" text-anchor="middle" fill="%s" transform="rotate(-90 %.1f %.1f)">%s</text>`,
				p.class, q.x, q.y, rgb(p.color), q.x, q.y, html.EscapeString(p.text))
		}
		b.WriteString(close)
		b.WriteByte('\n')
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func rgb(c color.RGBA) string { return fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B) }

func opacity(attr string, c color.RGBA) string {
	if c.A == 255 {
		return ""
	}
	return fmt.Sprintf(` %s-opacity="%.2f"`, attr, float64(c.A)/255)
}
