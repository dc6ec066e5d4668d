# nbgrader configuration of the ViT course (the single copy).
#
# The generated course folder (autograder/course/ by default) holds a two-line
# nbgrader_config.py that loads this file, so `nbgrader ...` run by hand inside the
# course folder behaves exactly like `python -m autograder ...`.

c = get_config()  # noqa: F821  (provided by traitlets when it loads this file)

c.CourseDirectory.course_id = "vitcourse"

# Autograding: nbgrader's own pipeline with the execute step replaced by the hardened
# one (sandboxed kernel, wall-clock budget, dead-kernel recovery, output cap).
c.Autograde.autograde_preprocessors = [
    "autograder.sandbox.execute.GuardedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
# Late work (autograder/commands/late.py): `collect` writes each submission's time to timestamp.txt and
# these due dates to the gradebook; AssignLatePenalties (above) then asks this plugin for the
# penalty, stored as the notebook's late_submission_penalty and subtracted in feedback/export.
c.DueDates.due_dates = {
    # "assignment1": "2026-12-14 23:59:00 Europe/Zurich",
}
c.AssignLatePenalties.plugin_class = "autograder.commands.late.PercentPerDayLate"
c.PercentPerDayLate.percent_per_day = 10.0   # of the score, per started day late
c.PercentPerDayLate.zero_after_days = 7.0    # from 7 days late on: no points
# The limits Validate shares with grading (Execute.timeout: CPU-seconds per cell; GuardedExecute.
# cpu_budget: per notebook; CourseValidator.threads) live in the student side's own file, which the
# student package ships as it is: one copy of them.
_validate_config = __import__("pathlib").Path(__file__).resolve().parents[1] / "student" / "validate_config.py"
load_subconfig(str(_validate_config))  # noqa: F821
# Code that waits without computing is stopped by the clock at wall_factor x those limits.
c.GuardedExecute.wall_factor = 10
c.GuardedExecute.max_output_chars = 2_000_000
# A grading kernel is thrown away after its notebook: kill it rather than ask it to exit
# (a polite shutdown took 0.1-0.2 s, and now and then 2.6 s, per submission here).
c.GuardedExecute.shutdown_kernel = "immediate"
c.SandboxedKernelManager.sandbox = "bwrap"  # "none": documented fallback, see README
c.SandboxedKernelManager.memory_limit_mb = 4096
c.SandboxedKernelManager.cpu_limit_s = 900
c.SandboxedKernelManager.file_size_limit_mb = 256

# Feedback: hidden tests stripped, hidden-test tracebacks reduced, math rendered offline.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "autograder.commands.feedback.RedactHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
# autograder/config/templates/feedback_offline extends nbgrader's feedback page, swapping the
# CDN MathJax 2 loader for a local MathJax 3 copy placed next to each page.
_templates = __import__("pathlib").Path(__file__).resolve().parent / "templates"
_nbgrader_templates = (__import__("pathlib").Path(__import__("nbgrader").__file__).parent
                       / "server_extensions" / "formgrader" / "templates")
# (nbgrader forces HTMLExporter.template_name = "feedback"; settings for the subclass win.)
c.GenerateFeedback.exporter_class = "autograder.commands.feedback.OfflineFeedbackExporter"
c.OfflineFeedbackExporter.template_name = "feedback_offline"
c.OfflineFeedbackExporter.extra_template_basedirs = [str(_templates), str(_nbgrader_templates)]
# nbgrader's templates root lets `{% extends 'feedback/index.html.j2' %}` name its page
# unambiguously; the bootstrap folder is the one nbgrader itself adds for its CSS.
c.OfflineFeedbackExporter.extra_template_paths = [
    str(_nbgrader_templates),
    str(_nbgrader_templates.parent / "static" / "node_modules" / "bootstrap" / "dist" / "css"),
]
