/* Far-OOD images that are real rather than synthetic: the letters A-J in many typefaces, drawn the
 * way notMNIST draws them (one glyph per image, scaled to fit, centred) and in MNIST's polarity
 * (white ink on black), rendered with FreeType from fonts Debian ships. */
#include "fmnist.h"

#include <ft2build.h>
#include FT_FREETYPE_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FONT_DIR_DEJAVU "/usr/share/fonts/truetype/dejavu/"
#define FONT_DIR_LIBERATION "/usr/share/fonts/truetype/liberation/"
#define FONT_DIR_FREEFONT "/usr/share/fonts/truetype/freefont/"
#define FONT_DIR_URW "/usr/share/fonts/opentype/urw-base35/"

/* Every text face of the four packages (URW's symbol and dingbat faces have no Latin letters). */
const char *const fm_default_fonts[] = {
    FONT_DIR_DEJAVU "DejaVuSans.ttf", FONT_DIR_DEJAVU "DejaVuSans-Bold.ttf",
    FONT_DIR_DEJAVU "DejaVuSansMono.ttf", FONT_DIR_DEJAVU "DejaVuSansMono-Bold.ttf",
    FONT_DIR_DEJAVU "DejaVuSerif.ttf", FONT_DIR_DEJAVU "DejaVuSerif-Bold.ttf",

    FONT_DIR_LIBERATION "LiberationMono-Regular.ttf", FONT_DIR_LIBERATION "LiberationMono-Bold.ttf",
    FONT_DIR_LIBERATION "LiberationMono-Italic.ttf", FONT_DIR_LIBERATION "LiberationMono-BoldItalic.ttf",
    FONT_DIR_LIBERATION "LiberationSans-Regular.ttf", FONT_DIR_LIBERATION "LiberationSans-Bold.ttf",
    FONT_DIR_LIBERATION "LiberationSans-Italic.ttf", FONT_DIR_LIBERATION "LiberationSans-BoldItalic.ttf",
    FONT_DIR_LIBERATION "LiberationSansNarrow-Regular.ttf",
    FONT_DIR_LIBERATION "LiberationSansNarrow-Bold.ttf",
    FONT_DIR_LIBERATION "LiberationSansNarrow-Italic.ttf",
    FONT_DIR_LIBERATION "LiberationSansNarrow-BoldItalic.ttf",
    FONT_DIR_LIBERATION "LiberationSerif-Regular.ttf", FONT_DIR_LIBERATION "LiberationSerif-Bold.ttf",
    FONT_DIR_LIBERATION "LiberationSerif-Italic.ttf", FONT_DIR_LIBERATION "LiberationSerif-BoldItalic.ttf",

    FONT_DIR_FREEFONT "FreeMono.ttf", FONT_DIR_FREEFONT "FreeMonoBold.ttf",
    FONT_DIR_FREEFONT "FreeMonoOblique.ttf", FONT_DIR_FREEFONT "FreeMonoBoldOblique.ttf",
    FONT_DIR_FREEFONT "FreeSans.ttf", FONT_DIR_FREEFONT "FreeSansBold.ttf",
    FONT_DIR_FREEFONT "FreeSansOblique.ttf", FONT_DIR_FREEFONT "FreeSansBoldOblique.ttf",
    FONT_DIR_FREEFONT "FreeSerif.ttf", FONT_DIR_FREEFONT "FreeSerifBold.ttf",
    FONT_DIR_FREEFONT "FreeSerifItalic.ttf", FONT_DIR_FREEFONT "FreeSerifBoldItalic.ttf",

    FONT_DIR_URW "C059-Roman.otf", FONT_DIR_URW "C059-Bold.otf", FONT_DIR_URW "C059-Italic.otf",
    FONT_DIR_URW "C059-BdIta.otf",
    FONT_DIR_URW "NimbusMonoPS-Regular.otf", FONT_DIR_URW "NimbusMonoPS-Bold.otf",
    FONT_DIR_URW "NimbusMonoPS-Italic.otf", FONT_DIR_URW "NimbusMonoPS-BoldItalic.otf",
    FONT_DIR_URW "NimbusRoman-Regular.otf", FONT_DIR_URW "NimbusRoman-Bold.otf",
    FONT_DIR_URW "NimbusRoman-Italic.otf", FONT_DIR_URW "NimbusRoman-BoldItalic.otf",
    FONT_DIR_URW "NimbusSans-Regular.otf", FONT_DIR_URW "NimbusSans-Bold.otf",
    FONT_DIR_URW "NimbusSans-Italic.otf", FONT_DIR_URW "NimbusSans-BoldItalic.otf",
    FONT_DIR_URW "NimbusSansNarrow-Regular.otf", FONT_DIR_URW "NimbusSansNarrow-Bold.otf",
    FONT_DIR_URW "NimbusSansNarrow-Oblique.otf", FONT_DIR_URW "NimbusSansNarrow-BoldOblique.otf",
    FONT_DIR_URW "P052-Roman.otf", FONT_DIR_URW "P052-Bold.otf", FONT_DIR_URW "P052-Italic.otf",
    FONT_DIR_URW "P052-BoldItalic.otf",
    FONT_DIR_URW "URWBookman-Light.otf", FONT_DIR_URW "URWBookman-Demi.otf",
    FONT_DIR_URW "URWBookman-LightItalic.otf", FONT_DIR_URW "URWBookman-DemiItalic.otf",
    FONT_DIR_URW "URWGothic-Book.otf", FONT_DIR_URW "URWGothic-Demi.otf",
    FONT_DIR_URW "URWGothic-BookOblique.otf", FONT_DIR_URW "URWGothic-DemiOblique.otf",
    FONT_DIR_URW "Z003-MediumItalic.otf",
    NULL,
};

#define N_LETTERS 10
/* Glyphs are rasterised large and then reduced by area averaging, which anti-aliases the 20-pixel
 * result far better than asking FreeType for a 20-pixel glyph directly (hinting distorts it). */
#define RENDER_PIXELS 96

/* Scale the ink bounding box of a coverage bitmap to fit FM_LETTER_BOX x FM_LETTER_BOX, keeping the
 * aspect ratio, by area averaging, and paste it centred into a 28 x 28 image of zeros. */
static void place_glyph(const FT_Bitmap *bm, float *image)
{
    int top = (int)bm->rows, bottom = -1, left = (int)bm->width, right = -1;
    for (int y = 0; y < (int)bm->rows; y++)
        for (int x = 0; x < (int)bm->width; x++)
            if (bm->buffer[y * bm->pitch + x]) {
                top = y < top ? y : top;
                bottom = y > bottom ? y : bottom;
                left = x < left ? x : left;
                right = x > right ? x : right;
            }
    memset(image, 0, FM_PIXELS * sizeof *image);
    if (bottom < 0)
        return;
    int h = bottom - top + 1, w = right - left + 1;
    double scale = (double)FM_LETTER_BOX / (h > w ? h : w); /* target pixels per source pixel */
    int th = (int)lround(h * scale), tw = (int)lround(w * scale);
    th = th < 1 ? 1 : th;
    tw = tw < 1 ? 1 : tw;
    int oy = (FM_SIDE - th) / 2, ox = (FM_SIDE - tw) / 2;
    for (int ty = 0; ty < th; ty++) {
        double y0 = ty / scale, y1 = (ty + 1) / scale; /* source span of this target row */
        for (int tx = 0; tx < tw; tx++) {
            double x0 = tx / scale, x1 = (tx + 1) / scale, sum = 0.0, area = 0.0;
            for (int sy = (int)y0; sy < (int)ceil(y1) && sy < h; sy++) {
                double wy = fmin(y1, sy + 1.0) - fmax(y0, (double)sy);
                for (int sx = (int)x0; sx < (int)ceil(x1) && sx < w; sx++) {
                    double wx = fmin(x1, sx + 1.0) - fmax(x0, (double)sx);
                    sum += wy * wx * bm->buffer[(top + sy) * bm->pitch + left + sx];
                    area += wy * wx;
                }
            }
            image[(oy + ty) * FM_SIDE + ox + tx] = area > 0 ? (float)(sum / area / 255.0) : 0.0f;
        }
    }
}

/* All ten letters of one face, or -1 (with a note) if the face lacks one of them. */
static int render_face(FT_Face face, const char *path, float *images)
{
    if (FT_Set_Pixel_Sizes(face, 0, RENDER_PIXELS) != 0) {
        fprintf(stderr, "fmnist_ood: note: skipping font %s: cannot be scaled\n", path);
        return -1;
    }
    for (int i = 0; i < N_LETTERS; i++) {
        FT_UInt glyph = FT_Get_Char_Index(face, (FT_ULong)('A' + i));
        if (glyph == 0 || FT_Load_Glyph(face, glyph, FT_LOAD_RENDER | FT_LOAD_NO_HINTING) != 0 ||
            face->glyph->bitmap.pixel_mode != FT_PIXEL_MODE_GRAY || face->glyph->bitmap.rows == 0) {
            fprintf(stderr, "fmnist_ood: note: skipping font %s: no usable glyph for '%c'\n", path,
                    'A' + i);
            return -1;
        }
        place_glyph(&face->glyph->bitmap, images + (size_t)i * FM_PIXELS);
    }
    return 0;
}

int fm_letters_render(const char *const *fonts, fm_set *out, int *fonts_used)
{
    memset(out, 0, sizeof *out);
    *fonts_used = 0;
    size_t n_fonts = 0;
    while (fonts[n_fonts])
        n_fonts++;
    if (n_fonts == 0)
        return fm_fail("no fonts given for the letters OOD set");
    out->name = "letters A-J";
    out->pixels = fm_alloc(n_fonts * N_LETTERS, FM_PIXELS * sizeof(float), "letters");
    if (!out->pixels)
        return -1;

    FT_Library library;
    if (FT_Init_FreeType(&library) != 0) {
        fm_set_free(out);
        return fm_fail("FreeType could not be initialised");
    }
    int used = 0;
    for (size_t f = 0; f < n_fonts; f++) {
        FT_Face face;
        if (FT_New_Face(library, fonts[f], 0, &face) != 0) {
            fprintf(stderr, "fmnist_ood: note: skipping font %s: cannot be loaded\n", fonts[f]);
            continue;
        }
        if (render_face(face, fonts[f], out->pixels + (size_t)used * N_LETTERS * FM_PIXELS) == 0)
            used++;
        FT_Done_Face(face);
    }
    FT_Done_FreeType(library);
    if (used == 0) {
        fm_set_free(out);
        return fm_fail("none of the %zu fonts could be used for the letters OOD set (install the "
                       "Debian packages fonts-dejavu-core fonts-liberation fonts-freefont-ttf "
                       "fonts-urw-base35, or pass --fonts)", n_fonts);
    }
    out->n = (int64_t)used * N_LETTERS;
    *fonts_used = used;
    return 0;
}
