# The student Lab (`make lab`, autograder/student/lab.py): JUPYTER_CONFIG_DIR points here.
import os

c = get_config()  # noqa: F821

# Of nbgrader, students keep the Validate button only; autograder.student.lab answers it with
# `python -m autograder validate` in a subprocess (course limits, server stays responsive).
# Assignment List, Course List and Formgrader need an nbgrader exchange or a gradebook.
c.ServerApp.jpserver_extensions = {
    "nbgrader.server_extensions.formgrader": False,
    "nbgrader.server_extensions.validate_assignment": False,
    "nbgrader.server_extensions.assignment_list": False,
    "nbgrader.server_extensions.course_list": False,
    "autograder.student.lab": True,
}
c.LabApp.custom_css = True  # custom/custom.css: locked cells and the Validate dialog
# Checkpoints next to Lab's other state, in this copy's .lab-state/ (autograder/student/lab.py).
if os.environ.get("VITCOURSE_LAB_CHECKPOINTS"):
    c.FileContentsManager.checkpoints_kwargs = {"root_dir": os.environ["VITCOURSE_LAB_CHECKPOINTS"]}
    # Makes the folder for each notebook folder there (else they go to a shared temporary folder).
    c.FileContentsManager.checkpoints_class = "autograder.student.lab.CourseCheckpoints"
    # jupyter-lsp's copies of open documents (for a language server, if one is installed).
    c.LanguageServerManager.virtual_documents_dir = os.path.join(
        os.path.dirname(os.environ["VITCOURSE_LAB_CHECKPOINTS"]), "virtual_documents")
