"""The instructor's commands, one module each (release, collect, grade, feedback, export, similarity,
package, doctor), with what only they use: the LMS readers and grade files, late work."""
