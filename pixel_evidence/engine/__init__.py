"""The explanation engine: one object that loads the models, reads the images, runs the
methods (sharing one gradient pass where it can), caches the maps and hands back an
``Explanation`` per image. The dashboard and the commands ask it for everything."""
