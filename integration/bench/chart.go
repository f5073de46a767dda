package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"strconv"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// The chart is drawn with the standard library's image package; the only
// thing it takes from elsewhere is a bitmap font for the labels, from the Go
// project's own golang.org/x/image. A plotting library would be a far larger
// dependency for a few bar charts.

// bar is one row of a panel: a median with its min–max whisker, or a stack
// of parts (then lo and hi are unused).
type bar struct {
	label       string
	median      float64
	lo, hi      float64
	stack       []float64
	highlighted bool // Palisade's rows are drawn in the accent colour
}

// panel is one horizontal bar chart.
type panel struct {
	title  string
	unit   string
	bars   []bar
	legend []string // names of the stack's parts
}

var (
	colBG      = color.RGBA{255, 255, 255, 255}
	colText    = color.RGBA{30, 30, 30, 255}
	colGrid    = color.RGBA{225, 225, 225, 255}
	colPeer    = color.RGBA{150, 160, 175, 255}
	colAccent  = color.RGBA{33, 102, 172, 255}
	colWhisker = color.RGBA{40, 40, 40, 255}
	colStack   = []color.RGBA{{33, 102, 172, 255}, {146, 197, 222, 255}}
)

const (
	chartW     = 960
	labelW     = 250 // room for the row labels, left of the bars
	rowH       = 22
	panelTop   = 30 // title
	panelBot   = 34 // axis labels and legend
	marginR    = 70 // room for the value printed after a bar
	fontHeight = 13
)

// render draws the panels one above the other.
func render(panels []panel) *image.RGBA {
	h := 10
	for _, p := range panels {
		h += panelTop + rowH*len(p.bars) + p.bottom()
	}
	img := image.NewRGBA(image.Rect(0, 0, chartW, h))
	draw.Draw(img, img.Bounds(), &image.Uniform{colBG}, image.Point{}, draw.Src)
	y := 10
	for _, p := range panels {
		y = p.draw(img, y)
	}
	return img
}

func (p panel) draw(img *image.RGBA, y int) int {
	text(img, 10, y+fontHeight+4, p.title, colText)
	y += panelTop
	x0, x1 := labelW, chartW-marginR
	maxV := 0.0
	for _, b := range p.bars {
		maxV = math.Max(maxV, math.Max(b.hi, sum(b.stack)))
		maxV = math.Max(maxV, b.median)
	}
	step := niceStep(maxV / 5)
	top := math.Ceil(maxV/step) * step
	if top == 0 || math.IsNaN(top) {
		top = 1
	}
	scale := func(v float64) int { return x0 + int(v/top*float64(x1-x0)) }
	bottom := y + rowH*len(p.bars)
	for v := 0.0; v <= top+step/2; v += step {
		x := scale(v)
		fill(img, x, y, x+1, bottom, colGrid)
		l := strconv.FormatFloat(v, 'f', -1, 64)
		text(img, x-len(l)*7/2, bottom+fontHeight+2, l, colText)
	}
	text(img, x1+24, bottom+fontHeight+2, p.unit, colText)
	for i, b := range p.bars {
		ry := y + i*rowH
		text(img, 10, ry+rowH/2+fontHeight/2-2, b.label, colText)
		if b.stack != nil {
			x := x0
			for j, part := range b.stack {
				w := scale(part) - x0
				fill(img, x, ry+4, x+w, ry+rowH-4, colStack[j%len(colStack)])
				x += w
			}
			text(img, x+6, ry+rowH/2+fontHeight/2-2, trimFloat(sum(b.stack)), colText)
			continue
		}
		c := colPeer
		if b.highlighted {
			c = colAccent
		}
		fill(img, x0, ry+4, scale(b.median), ry+rowH-4, c)
		if !math.IsNaN(b.lo) && !math.IsNaN(b.hi) && b.hi > b.lo {
			mid := ry + rowH/2
			fill(img, scale(b.lo), mid, scale(b.hi)+1, mid+1, colWhisker)
			fill(img, scale(b.lo), mid-4, scale(b.lo)+1, mid+5, colWhisker)
			fill(img, scale(b.hi), mid-4, scale(b.hi)+1, mid+5, colWhisker)
		}
		end := max(scale(b.median), scale(b.hi))
		text(img, end+6, ry+rowH/2+fontHeight/2-2, trimFloat(b.median), colText)
	}
	lx := x0
	for j, l := range p.legend {
		fill(img, lx, bottom+fontHeight+10, lx+12, bottom+fontHeight+20, colStack[j%len(colStack)])
		text(img, lx+16, bottom+fontHeight+20, l, colText)
		lx += 16 + 7*len(l) + 20
	}
	return bottom + p.bottom()
}

// bottom is the room below the bars: the axis labels, and the legend.
func (p panel) bottom() int {
	if len(p.legend) > 0 {
		return panelBot + 16
	}
	return panelBot
}

func fill(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	draw.Draw(img, image.Rect(x0, y0, x1, y1), &image.Uniform{c}, image.Point{}, draw.Src)
}

// text draws s with its baseline at y.
func text(img *image.RGBA, x, y int, s string, c color.Color) {
	d := font.Drawer{Dst: img, Src: &image.Uniform{c}, Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

// niceStep rounds a raw tick step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

func trimFloat(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func sum(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s
}
