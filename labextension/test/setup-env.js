// jsdom has no DragEvent, which @lumino/dragdrop (imported by @lumino/widgets) extends at
// import time; browsers have it. A MouseEvent stand-in is enough for these tests.
if (typeof window.DragEvent === 'undefined') {
  window.DragEvent = class DragEvent extends MouseEvent {};
}
